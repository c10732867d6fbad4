"""Helpers shared by the tests that run the Snakemake DAG for real (locally or on SLURM)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = "config/scenarios/tiny.yaml"
TASK_TABLES = ("anomaly", "generation", "inpainting", "recovery")


def copy_project(dest: Path) -> Path:
    """The files a user has in a clone (no results): Snakefile, workflow/, config/, profiles/."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "workflow", "config", "profiles", "slurm"):
        src = ROOT / item
        if src.is_symlink():
            (dest / item).symlink_to(os.readlink(src))
        elif src.is_dir():
            shutil.copytree(src, dest / item)
        else:
            shutil.copy(src, dest / item)
    return dest


def snakemake(cwd: Path, *args: str, timeout: int = 900, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:  # fmt: skip
    """Run Snakemake in ``cwd`` (put targets before ``--configfile``: it takes every following
    word as a config file)."""
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT),
                **(env or {})}  # fmt: skip
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def one_model_config(work: Path, mlflow: dict | None = None, **resources: dict) -> str:
    """The tiny scenario cut to one flow model (generation task), written to ``one.yaml``;
    tracking off unless ``mlflow`` gives its settings."""
    import yaml

    cfg = yaml.safe_load((work / TINY).read_text())
    cfg["experiments"] = {"tiny_generation": {**cfg["experiments"]["tiny_generation"],
                                              "priors": ["flow"]}}  # fmt: skip
    cfg["mlflow"] = mlflow or {"enabled": False}
    cfg["resources"].update(resources)
    (work / "one.yaml").write_text(yaml.safe_dump(cfg))
    return "one.yaml"
