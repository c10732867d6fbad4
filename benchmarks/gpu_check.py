"""What a first GPU run exercises, in one pass that fits in ten minutes, every figure in one file
(README "GPUs"; run it through `.ci/gpu-check`, which sets up the Python path and wheelhouse):

1. the machine: GPU, driver, torch and CUDA builds;
2. the CUDA tests (tests/test_cuda.py and the CUDA cases of tests/core/test_priors.py);
3. the tiny scenario's models (config/scenarios/tiny.yaml's settings), trained on the device by
   `lsnf train` as the workflow's rules run it: one epoch, then a resume to a second epoch;
   a generation model, an anomaly model (digit 1 held out) and a model learned from
   incomplete images (recovery);
4. every evaluation of lsnf.evaluation.registry on them through `lsnf eval`, FID with the domain
   extractor (`lsnf train-extractor`, `fid-stats`, `fid-floor`), and with Inception-v3 when
   its weights are present;
5. the speed figures: `lsnf bench --device D` (synchronised), the evaluation batch size the
   device gets by default and its throughput against batch 100, and (CUDA only)
   benchmarks/compile_end_to_end.py.

Usage: gpu_check.py [--device cuda] [--out gpu-check.md] [--work DIR] [--quick]
(--quick: the benchmark on the MNIST shape only, for a CPU fallback run.)
Exit status 1 if any step failed; the file says which, with the end of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "scenarios" / "tiny.yaml"
GENERATION = ROOT / "config" / "models" / "mnist_generation.yaml"
ANOMALY = ROOT / "config" / "models" / "mnist_anomaly.yaml"


class Check:
    """Runs the steps, keeps every figure, writes the report."""

    def __init__(self, device: str, work: Path, out: Path) -> None:
        self.device, self.work, self.out = device, work, out
        self.rows: list[dict] = []  # step, seconds, ok, figures
        self.texts: list[tuple[str, str]] = []  # verbatim outputs (benchmark tables)
        self.failed: list[tuple[str, str]] = []

    def run(self, step: str, args: list[str], timeout: int = 600, keep: bool = False) -> str:
        """Run a command from the repository root; record its time and whether it succeeded."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        start = time.perf_counter()
        try:
            r = subprocess.run(
                args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
            output, ok = r.stdout + r.stderr, r.returncode == 0
        except subprocess.TimeoutExpired as err:
            output, ok = f"{err.stdout or ''}{err.stderr or ''}\nTIMED OUT after {timeout} s", False
        seconds = time.perf_counter() - start
        self.rows.append({"step": step, "seconds": round(seconds, 2), "ok": ok, "figures": {}})
        if not ok:
            self.failed.append((step, output[-3000:]))
        if keep:
            self.texts.append((step, output))
        self.write()
        return output

    def lsnf(self, step: str, *args: str, timeout: int = 600, keep: bool = False) -> str:
        return self.run(step, [sys.executable, "-m", "lsnf.cli", *args], timeout, keep)

    def figure(self, **values: object) -> None:
        """Figures of the last step."""
        self.rows[-1]["figures"].update(values)
        self.write()

    def write(self) -> None:
        lines = ["# lsnf GPU check", "", f"device: `{self.device}`", ""]
        lines += ["| step | ok | seconds | figures |", "|---|---|---|---|"]
        for r in self.rows:
            figures = ", ".join(f"{k}={v}" for k, v in r["figures"].items())
            ok = "yes" if r["ok"] else "FAILED"
            lines.append(f"| {r['step']} | {ok} | {r['seconds']} | {figures} |")
        for step, text in self.texts:
            lines += ["", f"## {step}", "", "```", text.strip(), "```"]
        for step, text in self.failed:
            lines += ["", f"## FAILED: {step}", "", "```", text.strip(), "```"]
        self.out.write_text("\n".join(lines) + "\n")


def _machine(check: Check) -> None:
    import torch

    check.rows.append({"step": "machine", "seconds": 0.0, "ok": True, "figures": {}})
    figures: dict[str, object] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    if check.device.startswith("cuda"):
        if not torch.cuda.is_available():
            check.rows[-1]["ok"] = False
            check.failed.append(("machine", "device cuda asked for, but torch sees no CUDA GPU"))
        else:
            props = torch.cuda.get_device_properties(torch.device(check.device))
            figures |= {
                "gpu": props.name,
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "cudnn": torch.backends.cudnn.version(),
                "bf16": torch.cuda.is_bf16_supported(),
            }
    if shutil.which("nvidia-smi"):
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        figures["driver"] = q.stdout.strip().splitlines()[0] if q.returncode == 0 else "?"
    else:
        from lsnf.hardware import describe

        figures["cpu"] = describe()["cpu"]
    check.figure(**figures)


def _pytest_counts(output: str) -> dict[str, int]:
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output)}


def _tiny_sets(experiment: str) -> list[str]:
    """The tiny scenario's `set:` of an experiment, as `--set` flags."""
    exp = yaml.safe_load(TINY.read_text())["experiments"][experiment]
    return [a for k, v in exp["set"].items() for a in ("--set", f"{k}={v}")]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train(check: Check, name: str, config: Path, sets: list[str]) -> Path:
    """One epoch, then a resume to the second, as a workflow's retry would."""
    run = check.work / name
    base = [str(config), "--out", str(run), *sets, "--set", f"device={check.device}"]
    base += ["--set", "train.progress=false"]
    check.lsnf(f"train {name}: epoch 1", "train", *base, "--set", "train.epochs=1")
    if (run / "metrics.jsonl").is_file():
        check.figure(images_per_s=round(_metrics(run)[-1].get("images_per_s", 0), 1))
    out = check.lsnf(f"train {name}: resume to epoch 2", "train", *base, "--set", "train.epochs=2")
    if (run / "metrics.jsonl").is_file():
        rows = _metrics(run)
        check.figure(
            resumed="resuming" in out,
            epochs=[int(r["epoch"]) for r in rows if r["epoch"] > 0],
            images_per_s=round(rows[-1].get("images_per_s", 0), 1),
        )
    if "resuming" not in out:
        check.rows[-1]["ok"] = False
        check.failed.append((f"train {name}: resume", "the second call did not resume:\n" + out))
    return run / "model.pt"


def _evaluate(check: Check, name: str, model: Path, *sets: str, grid: bool = False) -> None:
    out = check.work / "eval" / f"{model.parent.name}-{name}-{len(check.rows)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = ["--out", f"{out}.json"] if name != "samples" else ["--out", f"{out}.png"]
    if grid:
        flags += ["--grid", f"{out}.png"]
    settings = [a for s in sets for a in ("--set", s)]
    check.lsnf(
        f"eval {name} ({model.parent.name})",
        "eval", name, str(model), *flags, *settings, "--device", check.device,
    )  # fmt: skip
    result = Path(f"{out}.json")
    if result.is_file():
        r = json.loads(result.read_text())
        batch = r.get("inference", {}).get("batch_size", r.get("batch_size"))
        check.figure(value=round(r["value"], 4), n=r.get("n"), batch_size=batch)


def _fid(check: Check, model: Path, extractor: str, weights: Path | None, n_ref: int) -> None:
    """Reference statistics, the floor and the model's FID with ``extractor``."""
    data = [str(GENERATION), *_tiny_sets("tiny_generation")]
    w = ["--weights", str(weights)] if weights else []
    stats = check.work / f"ref-{extractor}.npz"
    check.lsnf(
        f"fid-stats {extractor}",
        "fid-stats", *data, "--split", "train", "--n", str(n_ref), "--extractor", extractor,
        *w, "--device", check.device, "--out", str(stats),
    )  # fmt: skip
    floor = check.work / f"floor-{extractor}.json"
    check.lsnf(
        f"fid-floor {extractor}",
        "fid-floor", *data, "--split", "test", "--n", "64", "--stats", str(stats),
        "--extractor", extractor, *w, "--device", check.device, "--out", str(floor),
    )  # fmt: skip
    if floor.is_file():
        check.figure(fid_floor=round(json.loads(floor.read_text())["value"], 3))
    fid = [f"fid.extractor={extractor}", f"fid.stats={stats}", "fid.n=64", "bootstrap=20"]
    _evaluate(check, "fid", model, *fid, *([f"fid.weights={weights}"] if weights else []))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="gpu-check.md")
    p.add_argument("--work", help="working folder (default: a temporary one, removed)")
    p.add_argument("--quick", action="store_true", help="benchmark the MNIST shape only")
    args = p.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lsnf-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    check = Check(args.device, work.resolve(), Path(args.out).resolve())
    start = time.perf_counter()
    try:
        _machine(check)
        tests = check.run(
            "CUDA tests",
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/test_cuda.py", "tests/core/test_priors.py", "-k", "cuda"],
        )  # fmt: skip
        check.figure(**_pytest_counts(tests))

        generation = _train(check, "generation", GENERATION, _tiny_sets("tiny_generation"))
        digit_1 = [*_tiny_sets("tiny_anomaly"), "--set", "data.held_out_digit=1"]
        anomaly = _train(check, "anomaly", ANOMALY, digit_1)
        incomplete = [
            *_tiny_sets("tiny_recovery"),
            "--set", "data.corruption.kind=salt_pepper", "--set", "data.corruption.p=0.3",
        ]  # fmt: skip
        recovery = _train(check, "recovery", GENERATION, incomplete)

        _evaluate(check, "reconstruction", generation, "test_steps=3", "n_test=100", grid=True)
        _evaluate(check, "samples", generation, "grid_samples=16")
        _evaluate(check, "anomaly", anomaly, "test_steps=3", "n_test=200")
        _evaluate(
            check, "inpainting", generation, "test_steps=3", "n_test=20", "completions=2",
            "mask.kind=center_square", grid=True,
        )  # fmt: skip
        _evaluate(check, "recovery", recovery, "test_steps=3", "n_test=50", grid=True)

        weights = work / "cnn.pt"
        check.lsnf(
            "train-extractor (CPU by design)",
            "train-extractor", str(GENERATION), *_tiny_sets("tiny_generation"),
            "--epochs", "1", "--out", str(weights),
        )  # fmt: skip
        _fid(check, generation, "lsnf-domain-cnn", weights, n_ref=300)
        from lsnf.metrics.fid import default_inception_weights

        inception = default_inception_weights()
        if inception.is_file():
            _fid(check, generation, "inception-v3-compat", inception, n_ref=300)
        else:
            check.rows.append(
                {"step": "FID inception-v3-compat", "seconds": 0.0, "ok": True,
                 "figures": {"skipped": f"no weights at {inception}"}}
            )  # fmt: skip

        shapes = "mnist" if args.quick else "mnist,svhn,cifar10,celeba64"
        blocks = "2" if args.quick else "5"
        check.lsnf(
            "lsnf bench", "--threads", str(os.cpu_count() or 1), "bench", "--device", args.device,
            "--shapes", shapes, "--blocks", blocks, keep=True,
        )  # fmt: skip
        check.run(
            "evaluation batch size (benchmarks/eval_batch_size.py)",
            [sys.executable, "benchmarks/eval_batch_size.py", str(os.cpu_count() or 1),
             "--device", args.device, *(["--sizes", "100"] if args.quick else [])],
            keep=True,
        )  # fmt: skip
        if args.device.startswith("cuda"):
            check.run(
                "compile_end_to_end (eager vs torch.compile with CUDA graphs)",
                [sys.executable, "benchmarks/compile_end_to_end.py", "--device", args.device],
                keep=True,
            )
    finally:
        check.rows.append(
            {"step": "total", "seconds": round(time.perf_counter() - start, 1),
             "ok": not check.failed, "figures": {}}
        )  # fmt: skip
        check.write()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"[gpu-check] {check.out}: {len(check.failed)} failed step(s)")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
