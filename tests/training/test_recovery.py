"""Learning from incomplete data (docs/method.md §6.2, docs/protocols.md §5) and the
inpainting/recovery CLI."""

from __future__ import annotations

import json

import torch
from workflow_helpers import ROOT, lsnf_cli, sets

import lsnf.training.train
from lsnf.data.splits import ImageSplit, corruption_masks, load_split
from lsnf.training.train import fit

CORRUPT = {"data": {"corruption": {"kind": "salt_pepper", "p": 0.5, "patch": 4}}}


def test_recovery_training_never_reads_hidden_pixels(make_config, tmp_path, monkeypatch):
    cfg = make_config(**CORRUPT)
    clean = fit(cfg, tmp_path / "clean")

    def poisoned_load_split(data_cfg, split):
        data = load_split(data_cfg, split)
        masks = corruption_masks(data_cfg, data)
        noise = torch.randint(
            0, 256, data.images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        )
        images = torch.where(masks.bool().expand_as(data.images), data.images, noise)
        assert not torch.equal(images, data.images)
        return ImageSplit(images, data.labels, data.meta)

    monkeypatch.setattr(lsnf.training.train, "load_split", poisoned_load_split)
    poisoned = fit(cfg, tmp_path / "poisoned")
    for (name, a), (_, b) in zip(
        clean.state_dict().items(), poisoned.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_masks_change_training(make_config, tmp_path):
    """The mask is really applied: corrupted training differs from complete training."""
    a = fit(make_config(), tmp_path / "complete")
    b = fit(make_config(**CORRUPT), tmp_path / "corrupt")
    assert not torch.equal(next(a.generator.parameters()), next(b.generator.parameters()))


def test_inpaint_and_recover_cli(tmp_path):
    cfg = str(ROOT / "config" / "models" / "mnist_generation.yaml")
    tiny = sets("data.limit=200", "model.ngf=4", "model.latent_dim=4", "train.epochs=1",
                "inference.steps=3", "train.progress=false")  # fmt: skip
    r = lsnf_cli("train", cfg, "--out", "complete", *tiny, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    args = "eval inpainting complete/model.pt --out inpaint.json --grid inpaint.png".split()
    settings = sets("n_test=20", "completions=2", "test_steps=5", "step_size=0.05",
                    "mask.kind=center_square")  # fmt: skip
    r = lsnf_cli(*args, *settings, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "inpaint.json").read_text())
    assert res["evaluation"] == "inpainting" and 0 < res["value"] < 1 and res["n"] == 20
    assert res["mask"]["kind"] == "center_square" and res["completions"] == 2
    assert res["inference"]["init"] == "prior sample" and 0 < res["ssim"] <= 1
    assert (tmp_path / "inpaint.png").stat().st_size > 0

    corrupt = sets("data.corruption.kind=salt_pepper", "data.corruption.p=0.3")
    r = lsnf_cli("train", cfg, "--out", "corrupt", *tiny, *corrupt, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    args = "eval recovery corrupt/model.pt --out recovery.json".split()
    r = lsnf_cli(*args, *sets("n_test=50", "test_steps=5"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "recovery.json").read_text())
    assert res["evaluation"] == "recovery" and 0 < res["value"] < 1 and res["n"] == 50
    assert res["mask"]["kind"] == "salt_pepper" and res["mask"]["p"] == 0.3
    r = lsnf_cli("eval", "recovery", "complete/model.pt", "--out", "x.json", cwd=tmp_path)
    assert r.returncode != 0 and "complete images" in r.stderr


def test_masked_path_with_nothing_hidden_equals_complete_training(make_config, tmp_path):
    """salt_pepper with p = 0 hides nothing: the masked likelihood and loss must then give
    exactly the parameters of complete-data training."""
    complete = fit(make_config(), tmp_path / "complete")
    masked = fit(
        make_config(data={"corruption": {"kind": "salt_pepper", "p": 0.0}}), tmp_path / "masked"
    )
    for (name, a), (_, b) in zip(
        complete.state_dict().items(), masked.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
