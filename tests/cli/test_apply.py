"""`lsnf score`, `sample`, `reconstruct`, `inpaint` on new images (docs/usage.md "Your own images"):
run for real through the CLI on PNG files written here. `lsnf score` on a folder gives `lsnf
eval anomaly`'s per-image scores for the same images, model and seed (to 1e-5)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from workflow_helpers import ROOT, lsnf_cli, train_tiny_mnist, write_pngs

import lsnf
from lsnf.data.splits import load_split

pytestmark = pytest.mark.slow  # a trained model, then 8-32 s a test on 2 cores, 62 s in all


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return lsnf_cli(*args, cwd=ROOT)


@pytest.fixture(scope="module")
def anomaly_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_mnist(tmp_path_factory.mktemp("anomaly"), "mnist_anomaly.yaml")


def test_score_on_a_folder_equals_eval_anomaly_per_image(anomaly_model: Path, tmp_path: Path):
    r = cli(
        "eval", "anomaly", str(anomaly_model), "--out", str(tmp_path / "a.json"),
        "--set", "n_test=40", "--set", "seed=3",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    evaluated = pd.read_parquet(tmp_path / "a.examples.parquet")
    model = lsnf.load(anomaly_model)
    test = load_split(model.config.data, "test").head(40)
    write_pngs(tmp_path / "new", test.images[:, 0].numpy())  # the same 40 images, as files
    out = tmp_path / "scores.parquet"
    r = cli("score", str(anomaly_model), str(tmp_path / "new"), "--out", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    scored = pd.read_parquet(out)
    assert list(scored["file"]) == [f"{i:04d}.png" for i in range(40)]
    np.testing.assert_allclose(scored["score"], evaluated["score"], rtol=1e-5, atol=1e-5)
    # its MSE, computed independently from the API's z* and g(z*)
    z = model.encode(test.images, seed=3)
    x = test.images.double() / 127.5 - 1
    mse = (x - (model.decode(z).double() * 2 - 1)).pow(2).flatten(1).mean(1)
    np.testing.assert_allclose(scored["mse"], mse.numpy(), rtol=1e-5, atol=1e-6)
    meta = json.loads(pq.read_schema(out).metadata[b"lsnf"])
    record = json.loads((tmp_path / "a.json").read_text())
    assert meta["inference"] == record["inference"]  # the same settings, recorded
    assert meta["checkpoint_sha256"] == record["checkpoint_sha256"]
    assert meta["images"]["n"] == 40 and meta["score"] == record["score"]


def test_sample_reconstruct_and_inpaint_write_images(anomaly_model: Path, tmp_path: Path):
    model = lsnf.load(anomaly_model)
    images = load_split(model.config.data, "test").head(5).images  # (5, 1, 28, 28)
    write_pngs(tmp_path / "in", images[:, 0].numpy())

    assert (
        cli("sample", str(anomaly_model), "-n", "7", "--out", str(tmp_path / "s")).returncode == 0
    )
    files = sorted((tmp_path / "s").glob("*.png"))
    assert len(files) == 7 and np.asarray(Image.open(files[0])).shape == (28, 28)
    samples = (model.sample(7) * 255).round().to(torch.uint8)  # (7, 1, 28, 28)
    assert np.array_equal(np.asarray(Image.open(files[6])), samples[6, 0].numpy())
    r = cli("sample", str(anomaly_model), "-n", "7", "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "exists" in r.stderr  # nothing overwritten
    assert (
        cli("sample", str(anomaly_model), "-n", "4", "--out", str(tmp_path / "g.png")).returncode
        == 0
    )

    r = cli("reconstruct", str(anomaly_model), str(tmp_path / "in"), "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [f"{i:04d}.png" for i in range(5)]

    mask = np.full((28, 28), 255, np.uint8)
    mask[:, 14:] = 0  # the right half hidden
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for spec, observed in ((str(tmp_path / "mask.png"), np.s_[:, :14]), ("center", None)):
        out = tmp_path / f"p{len(spec)}"
        r = cli("inpaint", str(anomaly_model), str(tmp_path / "in"), "--mask", spec,
                "--completions", "2", "--out", str(out))  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(list(out.glob("*.png"))) == 10  # 5 images x 2 completions
        if observed is not None:  # the observed pixels are the input's
            got = np.asarray(Image.open(out / "0003-c1.png"))
            assert np.array_equal(got[observed], images[3, 0].numpy()[observed])
    r = cli("inpaint", str(anomaly_model), str(tmp_path / "in"), "--mask", "middle",
            "--out", str(tmp_path / "bad"))  # fmt: skip
    assert r.returncode == 2 and "mask tag" in r.stderr and not (tmp_path / "bad").exists()


def test_an_image_of_another_size_is_one_line_unless_resized(anomaly_model: Path, tmp_path):
    (tmp_path / "in").mkdir()
    big = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    Image.fromarray(big).save(tmp_path / "in" / "big.png")
    out = tmp_path / "s.parquet"
    r = cli("score", str(anomaly_model), str(tmp_path / "in"), "--out", str(out))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "big.png: 40x50 pixels" in lines[0]
    assert "--resize" in lines[0] or "resize" in lines[0]
    assert not out.exists()
    r = cli("score", str(anomaly_model), str(tmp_path / "in"), "--out", str(out),
            "--resize", "center_crop")  # fmt: skip
    assert r.returncode == 0 and len(pd.read_parquet(out)) == 1


def test_score_of_a_workflow_model_takes_its_anomaly_tables_k_test(
    anomaly_model: Path, tmp_path: Path
) -> None:
    """#28 B10: a workflow's model is scored, by default, with the test_steps its experiment's
    anomaly table used (results/settings/EXP/anomaly.yaml), not the run config's K_test; colour
    images for a grayscale model get a model's advice, not a dataset's."""
    import shutil

    from lsnf import layout
    from lsnf.apply import workflow_test_steps

    results = tmp_path / "results"
    model = Path(layout.model("mine", "flow-digit1-seed0", str(results)))
    model.parent.mkdir(parents=True)
    shutil.copy(anomaly_model, model)
    assert workflow_test_steps(model) is None  # no anomaly evaluation planned there
    settings = Path(layout.eval_settings("mine", "anomaly", str(results)))
    settings.parent.mkdir(parents=True)
    settings.write_text("test_steps: 3\nseed: 0\n")
    assert workflow_test_steps(model) == (3, settings)
    assert workflow_test_steps(anomaly_model) is None
    images = load_split(lsnf.load(anomaly_model).config.data, "test").head(4).images
    write_pngs(tmp_path / "new", images[:, 0].numpy())
    r = cli("score", str(model), str(tmp_path / "new"), "--out", str(tmp_path / "s.parquet"))
    assert r.returncode == 0 and f"K_test=3, from {settings}" in r.stdout, r.stderr[-2000:]
    meta = json.loads(pq.read_schema(tmp_path / "s.parquet").metadata[b"lsnf"])
    assert meta["inference"]["steps"] == 3
    colour = tmp_path / "colour"
    colour.mkdir()
    Image.fromarray(
        np.dstack([images[0, 0].numpy(), images[1, 0].numpy(), images[2, 0].numpy()])
    ).save(colour / "c.png")
    r = cli("score", str(model), str(colour), "--out", str(tmp_path / "c.parquet"))
    assert r.returncode != 0
    assert "a colour (RGB) image, but this model was trained on grayscale images" in r.stderr
    assert "data.folder" not in r.stderr, r.stderr
