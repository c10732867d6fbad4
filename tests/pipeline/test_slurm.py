"""The workflow on a real SLURM cluster, as users run it: ``snakemake --cores all --profile slurm``
from the repository root.

- the tiny scenario's generation experiment goes through sbatch (SLURM job ids in the log,
  every job COMPLETED in SLURM's own records) and its table, measurements and models equal
  those of the same experiment in the tiny scenario run locally, and none asked for a GPU
  (``device: cpu``);
- with ``device: cuda``, exactly the rules that run a network on it ask for a GPU (dry run);
- a training job that runs out of memory is killed by SLURM and retried with twice the memory
  through ``attempt``;
- a config error is reported before any job is submitted.

They need a running cluster (``bash .ci/slurm-up`` as root; ``.ci/run`` starts one). Without one
they skip, unless ``LSNF_REQUIRE_SLURM=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("snakemake")
pytest.importorskip("snakemake_executor_plugin_slurm")

from workflow_helpers import TINY, copy_project, one_model_config, snakemake

pytestmark = pytest.mark.workflow  # every test here runs Snakemake or SLURM

# A cluster without an accounting database (like the CI one) needs squeue for job states
# (docs/running.md "On a SLURM cluster"); short intervals keep the test quick.
NO_ACCOUNTING = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
]


def on_slurm(work: Path, configfile: str, *targets: str, timeout: int):
    """Snakemake in ``work`` through ``--profile slurm`` (squeue polling), for ``targets``."""
    return snakemake(work, *targets, "--cores", "all", "--profile", "slurm", *NO_ACCOUNTING,
                     "--configfile", configfile, timeout=timeout)  # fmt: skip


SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _slurm_unavailable() -> str | None:
    """Why no usable SLURM cluster answers here (None if one does)."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch) on PATH; start one with `bash .ci/slurm-up`"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    states = set(r.stdout.split())
    if r.returncode != 0 or not states & {"idle", "mix", "alloc"}:
        return f"no SLURM node is up (sinfo: {(r.stdout + r.stderr).strip()[:200]!r})"
    return None


@pytest.fixture(scope="session")
def slurm() -> None:
    """A usable cluster, or skip (fail under LSNF_REQUIRE_SLURM=1). Session-scoped and listed
    first, so a skip comes before the local tiny run that the comparison also needs."""
    reason = _slurm_unavailable()
    if reason is not None:
        if os.environ.get("LSNF_REQUIRE_SLURM") == "1":
            pytest.fail(f"LSNF_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)


def _job_states(ids: list[str]) -> dict[str, tuple[str, str]]:
    """SLURM's own record of jobs: id -> (state, memory requested); every job it knows if
    ``ids`` is empty."""
    select = ["-j", ",".join(ids)] if ids else []
    r = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i %T %m", *select],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {i: (state, mem) for i, state, mem in (line.split() for line in r.stdout.splitlines())}


def _gpu_requests(ids: list[str]) -> dict[str, str]:
    """SLURM's record of the GPUs each job asked for: id -> its TRES per job (``gres:gpu:1``
    for ``--gpus=1``, ``N/A`` for none)."""
    r = subprocess.run(
        ["squeue", "--states=all", "-h", "-O", "JobID,tres-per-job", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {i: tres for i, tres in (line.split() for line in r.stdout.splitlines())}


def _submitted(log: str) -> list[tuple[str, str, str]]:
    """(snakemake job, SLURM job id, SLURM log) of every submission in a Snakemake log."""
    return SUBMITTED.findall(log)


def _steps(log: str) -> int:
    m = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log)
    assert m, log[-2000:]
    return int(m[-1][1])


def _generation_only(work: Path) -> str:
    """The tiny scenario cut to its generation experiment (every prior, 2s-ABP included, and
    every rule kind the generation task has), written to ``generation.yaml``."""
    import yaml

    cfg = yaml.safe_load((work / TINY).read_text())
    cfg["experiments"] = {"tiny_generation": cfg["experiments"]["tiny_generation"]}
    (work / "generation.yaml").write_text(yaml.safe_dump(cfg))
    return "generation.yaml"


@pytest.mark.slow
def test_tiny_generation_on_slurm_equals_the_local_run(
    slurm, tiny_run: Path, tmp_path: Path
) -> None:
    """The generation experiment only (the whole tiny scenario through sbatch took most of
    CI's time; the other tasks' rules differ from these only in their command)."""
    import pandas as pd
    import torch

    work = copy_project(tmp_path)
    r = on_slurm(work, _generation_only(work), timeout=1800)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert "Using profiles slurm" in log

    # every job except the local ones (the target `all`, the 4 resolved run configs, the
    # evaluation settings files, the one job that logs the evaluations into MLflow) went
    # through sbatch, and SLURM ran it
    local = Counter(re.findall(r"^localrule (\w+):", log, re.MULTILINE))
    assert set(local) == {"all", "run_config", "eval_settings", "track_evaluations"}, local
    assert local["all"] == local["track_evaluations"] == 1 and local["run_config"] == 4, local
    submitted = _submitted(log)
    rules = {path.split("/rule_")[1].split("/")[0] for _, _, path in submitted}
    assert {"train", "train_two_stage", "eval_fid", "fid_reference", "tables"} <= rules, rules
    assert len(submitted) == _steps(log) - sum(local.values()), log[-3000:]
    ids = [slurm_id for _, slurm_id, _ in submitted]
    states = _job_states(ids)
    assert {i: s for i, (s, _) in states.items() if s != "COMPLETED"} == {}
    assert set(states) == set(ids)
    # device: cpu, so no job holds a GPU (lsnf.pipeline.plan.gpu_resources)
    assert {i: t for i, t in _gpu_requests(ids).items() if "gpu" in t} == {}

    # the generation table is the local run's, byte for byte; so are the experiment's
    # measurements and its models' parameters
    local, remote = tiny_run / "results", work / "results"
    for ext in ("csv", "md", "tex"):
        a, b = (d / "tables" / f"generation.{ext}" for d in (local, remote))
        assert a.read_bytes() == b.read_bytes(), f"generation.{ext} differs"
    # identical runs write identical checkpoints (no wall-clock figures in them): every result
    # carries the same checkpoint and config SHA-256s
    a, b = (pd.read_csv(d / "tables" / "measurements.csv") for d in (local, remote))
    assert set(b.columns) <= set(a.columns) and len(b) > 0
    a = a.loc[a["experiment"] == "tiny_generation", list(b.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    models = sorted(p.relative_to(local) for p in local.glob("models/tiny_generation/*/model.pt"))
    assert len(models) == 4
    for m in models:
        a = torch.load(local / m, weights_only=True)["model"]
        b = torch.load(remote / m, weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), m


@pytest.mark.slow
def test_out_of_memory_training_is_retried_with_more_memory(slurm, tmp_path: Path) -> None:
    """550 MB on attempt 1 is less than the tiny training job needs (its Snakemake benchmark
    says about 730 MB here; how much SLURM's cgroup counts differs between machines: on one CI
    machine 1100 MB was killed too), so SLURM kills it; Snakemake retries it (profile: retries
    2) with attempt x 550 MB until one attempt has enough."""
    work = copy_project(tmp_path)
    config = one_model_config(work, train={"mem_mb": 550, "runtime": 10})
    model = "results/models/tiny_generation/flow-seed0/model.pt"
    r = on_slurm(work, config, model, timeout=900)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    assert (work / model).exists()

    trains = [(sid, path) for _, sid, path in _submitted(log) if "/rule_train/" in path]
    assert 2 <= len(trains) <= 3, log[-4000:]  # attempt 1 killed, the last attempt done
    states = _job_states([sid for sid, _ in trains])
    *killed, (last, _) = trains
    for attempt, (sid, path) in enumerate(killed, start=1):
        state = states[sid]
        assert state == ("FAILED", f"{550 * attempt}M") or state[0] == "OUT_OF_MEMORY", states
        assert "exceeded memory limit" in Path(path).read_text()
    assert states[last] == ("COMPLETED", f"{550 * len(trains)}M"), states


def test_with_device_cuda_exactly_the_rules_that_run_a_network_ask_for_a_gpu(
    slurm, tmp_path: Path
) -> None:
    """A dry run of the tiny scenario through the SLURM profile with ``device: cuda`` and a GPU
    model: training, every evaluation of the registry and the FID reference and floor ask for
    one GPU of that model (the executor plugin's ``gpu`` / ``gpu_model``); nothing else does,
    the domain extractor's training (CPU-only) included."""
    from lsnf.evaluation.registry import EVALUATIONS

    work = copy_project(tmp_path)
    cuda = ["--config", "device=cuda", "resources={gpu_model: h100}"]
    r = on_slurm(work, TINY, "-n", *cuda, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-4000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)", log, re.M)
    asks: dict[str, set[str]] = {}
    for rule, resources in jobs:
        gpu = ", ".join(r for r in resources.split(", ") if r.startswith("gpu"))
        asks.setdefault(rule, set()).add(gpu)
    gpu_rules = {"train", "train_two_stage", "fid_reference", "fid_floor"}
    gpu_rules |= {f"eval_{name}" for name in EVALUATIONS}
    assert {"train_extractor", "prepare_data", "tables"} <= set(asks) and gpu_rules <= set(asks)
    expected = {rule: {"gpu=1, gpu_model=h100" if rule in gpu_rules else ""} for rule in asks}
    assert asks == expected
    assert not _submitted(log)


def test_config_error_is_reported_before_any_job_is_submitted(slurm, tmp_path: Path) -> None:
    work = copy_project(tmp_path)
    bad = (work / TINY).read_text().replace("n_samples:", "n_sampels:")
    (work / "bad.yaml").write_text(bad)
    before = _job_states([])
    r = on_slurm(work, "bad.yaml", timeout=300)
    after = _job_states([])
    assert r.returncode != 0
    assert "n_sampels" in r.stdout + r.stderr
    assert not _submitted(r.stdout + r.stderr) and sorted(after) == sorted(before)
    assert not (work / "results").exists()
