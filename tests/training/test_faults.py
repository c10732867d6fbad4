"""Faults lose nothing: a SIGKILLed training job resumes to the parameters of an uninterrupted
run, through the CLI and through Snakemake; a failed evaluation leaves no output; an MLflow
server lost mid-run costs the MLflow logging of the jobs after it, never a result, and the
workflow names those jobs. (Out-of-memory retries need SLURM: tests/pipeline/test_slurm.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from workflow_helpers import ROOT, started, wait_until

from lsnf.training.checkpoint import CheckpointError, load_checkpoint

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}

RUN_CONFIG = {
    "seed": 3,
    "data": {"source": "synthetic", "synthetic": {"n_train": 3000, "n_test": 100}},
    "model": {"generator": "mnist", "latent_dim": 4, "ngf": 8},
    "prior": {"kind": "flow", "flow": {"depth": 2, "hidden": 16}},
    "inference": {"steps": 5, "test_steps": 5},
    "train": {"epochs": 3, "batch_size": 100, "progress": False},
}


def _train_cmd(config: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        *"-m lsnf.cli --threads 1 train".split(),
        str(config),
        "--out",
        str(out),
    ]


def _epoch_done(ckpt: Path) -> bool:
    """The epoch-1 checkpoint exists and is readable (it may be being replaced right now)."""
    try:
        return ckpt.exists() and load_checkpoint(ckpt)["epoch"] >= 1
    except CheckpointError:
        return False


def _kill_after_first_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as the epoch-1 checkpoint exists (so mid-epoch 2); fail if the
    training ends first or the checkpoint never comes."""
    wait_until(lambda: _epoch_done(ckpt), timeout, f"the epoch-1 checkpoint {ckpt}", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def _same_parameters(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_uninterrupted_parameters(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(RUN_CONFIG))
    subprocess.run(
        _train_cmd(config, tmp_path / "full"), env=ENV, check=True, timeout=600, capture_output=True
    )
    killed = tmp_path / "killed"
    with started(
        _train_cmd(config, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        _kill_after_first_checkpoint(proc, killed / "checkpoint.pt")
    assert not (killed / "model.pt").exists()  # a partial run never looks complete
    assert not list(killed.glob(".*.tmp"))  # no half-written checkpoint lying around
    r = subprocess.run(
        _train_cmd(config, killed), env=ENV, timeout=600, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr
    _same_parameters(tmp_path / "full" / "model.pt", killed / "model.pt")
    # #28 B8: the bookkeeping is the uninterrupted run's: every epoch's timing, the epochs and
    # iterations its results record, and model.pt's bytes
    _same_bookkeeping(tmp_path / "full", killed)
    (killed / "model.pt").unlink()  # rebuilt from the complete checkpoint.pt, as it was
    r = subprocess.run(
        _train_cmd(config, killed), env=ENV, timeout=600, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    _same_bookkeeping(tmp_path / "full", killed)


def _same_bookkeeping(full: Path, resumed: Path) -> None:
    from lsnf.io import read_json_lines
    from lsnf.training.checkpoint import load_checkpoint, training_summary

    rows = [read_json_lines(d / "metrics.jsonl") for d in (full, resumed)]
    assert [r["epoch"] for r in rows[0]] == [r["epoch"] for r in rows[1]]
    timed = [[r["epoch"] for r in rs if "seconds" in r] for rs in rows]
    assert timed[0] == timed[1] and len(timed[0]) == RUN_CONFIG["train"]["epochs"]
    summaries = [training_summary(load_checkpoint(d / "model.pt")) for d in (full, resumed)]
    assert json.dumps(summaries[0]) == json.dumps(summaries[1])  # NaN where both have NaN
    assert (full / "model.pt").read_bytes() == (resumed / "model.pt").read_bytes()


def _workflow_copy(dest: Path, run_config: dict) -> Path:
    from workflow_helpers import copy_project

    copy_project(dest)
    (dest / "config" / "models" / "fault.yaml").write_text(yaml.safe_dump(run_config))
    scenario = {
        "device": "cpu",
        "mlflow": {"enabled": False},
        "experiments": {
            "fault": {
                "task": "generation",
                "run_config": "config/models/fault.yaml",
                "priors": ["flow"],
                "seeds": [0],
            }
        },
    }
    (dest / "fault.yaml").write_text(yaml.safe_dump(scenario))
    return dest


MODEL = "results/models/fault/flow-seed0/model.pt"


def _snakemake_cmd(*args: str) -> list[str]:
    # targets first: --configfile takes every following word as a config file
    return [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile", "fault.yaml"]


def _snakemake(cwd: Path, *args: str, timeout: float = 600) -> int:
    """Run the fault scenario's workflow to its end; its exit status."""
    with started(
        _snakemake_cmd(*args),
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        return proc.wait(timeout=timeout)


@pytest.mark.workflow
@pytest.mark.slow
def test_killed_training_job_resumes_when_the_workflow_is_rerun(tmp_path: Path) -> None:
    pytest.importorskip("snakemake")
    psutil = pytest.importorskip("psutil")
    full = _workflow_copy(tmp_path / "full", RUN_CONFIG | {"seed": 0})
    assert _snakemake(full, MODEL) == 0
    work = _workflow_copy(tmp_path / "killed", RUN_CONFIG | {"seed": 0})
    ckpt = work / "results/models/fault/flow-seed0/checkpoint.pt"
    with started(
        _snakemake_cmd(MODEL),
        cwd=work,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as smk:
        wait_until(lambda: _epoch_done(ckpt), 300, f"the epoch-1 checkpoint {ckpt}", smk)
        # kill the training process itself (the job), as an OOM killer or a node failure would
        train = [
            c
            for c in psutil.Process(smk.pid).children(recursive=True)
            if "lsnf" in " ".join(c.cmdline()) and "train" in c.cmdline()
        ]
        assert train, "training job not found"
        for proc in train:
            proc.send_signal(signal.SIGKILL)
        assert smk.wait(timeout=120) != 0  # the workflow reports the failed job
    assert not (work / MODEL).exists()  # Snakemake keeps no partial output
    assert ckpt.exists()  # ... but the checkpoint survives for the re-run
    assert _snakemake(work, MODEL) == 0
    _same_parameters(full / MODEL, work / MODEL)


@pytest.mark.workflow
def test_failed_evaluation_leaves_no_output(tmp_path: Path) -> None:
    pytest.importorskip("snakemake")
    work = _workflow_copy(tmp_path, RUN_CONFIG | {"train": RUN_CONFIG["train"] | {"epochs": 1}})
    assert _snakemake(work, MODEL) == 0
    model = work / MODEL
    model.write_bytes(model.read_bytes()[:200])  # corrupt the checkpoint: evaluation fails
    target = "results/eval/fault/flow-seed0/reconstruction.json"
    assert _snakemake(work, target) != 0
    assert (
        not (work / target).exists()
        and not (work / "results/eval/fault/flow-seed0/reconstruction.png").exists()
    )
    log = (work / "results/logs/eval_reconstruction/fault/flow-seed0.log").read_text()
    assert "corrupt or truncated" in log and "model.pt" in log


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _mlflow_server_cmd(workdir: Path, port: int) -> list[str]:
    """A real MLflow tracking server on 127.0.0.1."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'server.db'}",
        "--artifacts-destination",
        str(workdir / "server-artifacts"),
    ]


@pytest.mark.workflow
@pytest.mark.slow
def test_mlflow_server_lost_mid_run_loses_no_result_and_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("snakemake")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from workflow_helpers import copy_project, one_model_config, snakemake

    work = copy_project(tmp_path / "work")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    config = one_model_config(
        work, mlflow={"enabled": True, "tracking_uri": uri, "experiment": "lsnf-fault"}
    )
    server_log = open(tmp_path / "mlflow-server.log", "w")
    with started(
        _mlflow_server_cmd(tmp_path, port),
        cwd=tmp_path,
        env=ENV,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    ) as server:
        wait_until(lambda: _answers(f"{uri}/health"), 120, "the MLflow server", server)
        model = "results/models/tiny_generation/flow-seed0/model.pt"
        r = snakemake(work, model, "--cores", "2", "--configfile", config)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("lsnf-fault")
        (run,) = client.search_runs([exp.experiment_id])
        assert run.data.tags["lsnf.run_key"] == "tiny_generation/flow-seed0"
        assert "loss_g" in run.data.metrics  # training was tracked while the server was up
    server_log.close()  # the server and its workers are gone (SIGKILL to the process group)

    # the server is gone: the evaluations still run, write their results, fill the tables
    r = snakemake(work, "--cores", "2", "--configfile", config)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    results = work / "results"
    for name in ("reconstruction.json", "fid.json", "samples.png"):
        assert (results / "eval" / "tiny_generation" / "flow-seed0" / name).stat().st_size > 0
    gen = (results / "tables" / "generation.csv").read_text()
    assert "lsnf: tiny_generation" in gen
    # ... and the workflow names every job whose MLflow logging is missing
    assert "MLflow tracking failed in" in log and uri in log
    failures = [
        json.loads(x) for x in (results / "logs" / "mlflow-failures.jsonl").read_text().splitlines()
    ]
    # evaluation jobs never open MLflow; the one job that logs their outputs names the run
    failed = {(f["run_key"], " ".join(f["command"].split()[1:3])) for f in failures}
    assert ("tiny_generation/flow-seed0", "track evaluations") in failed, failures
    assert "MLflow tracking failed" in (results / "logs/track_evaluations/all.log").read_text()
    for rule in ("eval_reconstruction", "eval_fid"):
        (job_log,) = (results / "logs" / rule).rglob("*.log")
        assert "MLflow" not in job_log.read_text()
