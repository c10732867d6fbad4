"""lsnf.load (docs/usage.md "In Python"): its block runs as written on a trained model; the
methods are the evaluation layer's (a score equals `lsnf eval anomaly`'s per-example score);
inputs in either scale give the same answers; another checkpoint format is refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_helpers import train_tiny_mnist

import lsnf
from lsnf.training.checkpoint import CheckpointError, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generation_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_mnist(tmp_path_factory.mktemp("gen"), "mnist_generation.yaml")


def readme_block() -> str:
    text = (ROOT / "docs" / "usage.md").read_text()
    section = text.split("### In Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_block_runs_on_a_trained_model(generation_model: Path, capsys) -> None:
    code = readme_block()
    path = "results/models/mnist_generation/flow-seed0/model.pt"
    assert path in code
    exec(compile(code.replace(path, str(generation_model)), "docs/usage.md", "exec"), {})
    out = capsys.readouterr().out
    assert "prior flow" in out
    d = 4
    shapes = (
        f"torch.Size([16, 1, 28, 28]) torch.Size([16, {d}]) torch.Size([16]) torch.Size([16]) "
        f"torch.Size([2, 16, 1, 28, 28])"
    )
    assert shapes in out


def test_methods_agree_with_the_model_and_take_either_scale(generation_model: Path) -> None:
    model = lsnf.load(generation_model)
    images = model.sample(6, seed=1)  # (6, 1, 28, 28) in [0, 1]
    assert images.shape == (6, 1, 28, 28) and 0 <= float(images.min()) <= float(images.max()) <= 1
    assert torch.equal(images, model.sample(6, seed=1))  # the seed decides
    as_uint8 = (images * 255).round().to(torch.uint8)
    assert torch.equal(model.score(images), model.score(as_uint8))
    z = model.encode(as_uint8, steps=5)
    assert torch.equal(z, model.encode(images, steps=5))
    prior = model.network.prior
    assert torch.allclose(model.log_prior(z), -prior.neg_log_prob(z))
    rebuilt = model.reconstruct(images, steps=5)
    assert torch.allclose(rebuilt, model.decode(z))
    mask = torch.ones(1, 28, 28)
    mask[:, :, 14:] = 0
    filled = model.complete(images, mask, n=2, steps=3)
    assert filled.shape == (2, 6, 1, 28, 28)
    observed = (as_uint8[..., :14].float() / 255).expand(2, -1, -1, -1, -1)  # (2, 6, 1, 28, 14)
    assert torch.allclose(filled[..., :14], observed, atol=1e-6)  # observed pixels kept
    assert torch.equal(model.score(as_uint8.numpy()), model.score(as_uint8))  # numpy too
    with pytest.raises(lsnf.errors.UserError, match="give a torch tensor or a numpy array"):
        model.score(as_uint8.tolist())
    with pytest.raises(lsnf.errors.UserError, match="give them in"):
        model.score(images * 2)
    with pytest.raises(lsnf.errors.UserError, match=r"this model takes \(N, C, H, W\)"):
        model.score(images[:, :, :20])


def test_a_bare_import_reaches_every_submodule() -> None:
    """#28 B10: ``help(lsnf.api.Model)`` after ``import lsnf`` alone (submodules load on use)."""
    code = "import lsnf, pydoc; pydoc.render_doc(lsnf.api.Model); print(lsnf.core.flow.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "lsnf.core.flow", r.stderr
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lsnf.nope  # noqa: B018


def test_score_equals_eval_anomaly_per_image(tmp_path: Path) -> None:
    """The API's score and `lsnf eval anomaly`'s per-example scores: same model, images and
    seed, to 1e-5."""
    from lsnf.data.splits import load_split

    path = train_tiny_mnist(tmp_path / "a", "mnist_anomaly.yaml")
    out = tmp_path / "anomaly.json"
    r = subprocess.run(
        [sys.executable, "-m", "lsnf.cli", "eval", "anomaly", str(path), "--out", str(out),
         "--set", "n_test=40", "--set", "seed=3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    record = json.loads(out.read_text())
    examples = pd.read_parquet(out.with_suffix(".examples.parquet"))
    model = lsnf.load(path)
    images = load_split(model.config.data, "test").head(40).images
    scores = model.score(images, seed=3).double()
    assert record["inference"]["steps"] == 3 and len(examples) == 40
    assert torch.allclose(scores, torch.tensor(examples["score"].to_numpy()), rtol=1e-5, atol=1e-5)


def test_lsnf_sample_is_eval_samples_for_the_same_seed(generation_model: Path, tmp_path: Path):
    """`lsnf sample` and `lsnf eval samples` draw the same images for a seed (one inference
    layer, lsnf.core.sampling): the two grid PNGs are byte-identical, another seed's are not, and
    lsnf.load(...).sample is the evaluation's samples whatever its batch size."""
    from lsnf.config import EvaluationSettings
    from lsnf.evaluation.evaluate import samples
    from lsnf.training.checkpoint import load_model

    def cli(*args: str) -> None:
        r = subprocess.run(
            [sys.executable, "-m", "lsnf.cli", *args], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr[-2000:]

    model = str(generation_model)
    out = ["--out", str(tmp_path / "eval.png"), "--set", "grid_samples=20", "--set", "seed=4"]
    cli("eval", "samples", model, *out)
    cli("sample", model, "-n", "20", "--seed", "4", "--out", str(tmp_path / "sample.png"))
    cli("sample", model, "-n", "20", "--seed", "5", "--out", str(tmp_path / "other.png"))
    grid = (tmp_path / "eval.png").read_bytes()
    assert (tmp_path / "sample.png").read_bytes() == grid
    assert (tmp_path / "other.png").read_bytes() != grid

    ev = EvaluationSettings(grid_samples=7, seed=4)
    expected = samples(load_model(generation_model), ev).grid.images  # (7, C, H, W) in [-1, 1]
    api = lsnf.load(generation_model)
    for batch in (2, 7):
        got = api.sample(7, seed=4, batch_size=batch)  # (7, C, H, W) in [0, 1]
        assert torch.allclose(got, (expected.cpu() + 1) / 2, atol=1e-6), batch


def test_a_checkpoint_of_another_format_is_refused_naming_it(
    generation_model: Path, tmp_path: Path
) -> None:
    state = load_checkpoint(generation_model)
    old = tmp_path / "old.pt"
    torch.save({**state, "format": "lsnf-checkpoint-0"}, old)
    with pytest.raises(CheckpointError, match="'lsnf-checkpoint-0'.*'lsnf-checkpoint-1'"):
        lsnf.load(old)
