"""Shared fixtures: tiny configs and an isolated TORCH_HOME (no test may reach a download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lsnf.config import RunConfig, config_from_dict


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_config(**over: Any) -> RunConfig:
    """A run config small enough for CPU tests: synthetic 16x16 images, small generator."""
    base = {
        "seed": 0,
        "data": {
            "source": "synthetic",
            "synthetic": {"n_train": 64, "n_test": 32, "channels": 1, "image_size": 16},
        },
        "model": {"generator": "linear", "latent_dim": 4, "channels": 1, "image_size": 16},
        "prior": {
            "kind": "flow",
            "flow": {"depth": 2, "hidden": 16},
            "ebm": {"hidden": 16, "langevin_steps": 5},
        },
        "inference": {"steps": 5, "test_steps": 10},
        "train": {"epochs": 2, "batch_size": 16, "progress": False},
    }
    return config_from_dict(_merge(base, over))


@pytest.fixture
def make_config():
    return tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario run locally through Snakemake, once per test session (shared by the
    workflow tests and the SLURM comparison)."""
    pytest.importorskip("snakemake")
    pytest.importorskip("mlflow")
    from workflow_helpers import TINY, copy_project, snakemake

    work = copy_project(tmp_path_factory.mktemp("tiny"))
    r = snakemake(work, "--cores", "2", "--configfile", TINY)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work
