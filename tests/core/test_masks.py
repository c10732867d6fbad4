"""Mask generators (docs/method.md §7.5): coverage, reproducibility, geometry, and the one
spec type (lsnf.config.MaskSpec) behind tags, parameters and CLI flags."""

from __future__ import annotations

import pytest
import torch

from lsnf.config import MASK_TAG_PATTERN, ConfigError, MaskSpec, validated
from lsnf.core.masks import center_square, make_masks, random_square, salt_pepper


def test_center_square_is_the_papers_hole_at_64() -> None:
    m = center_square(3, 64)
    assert m.shape == (3, 1, 64, 64)
    hidden = (m[0, 0] == 0).nonzero()
    assert hidden[:, 0].min() == 20 and hidden[:, 0].max() == 59  # rows 20-59
    assert hidden[:, 1].min() == 12 and hidden[:, 1].max() == 51  # columns 12-51
    assert int((m == 0).sum()) == 3 * 40 * 40
    assert torch.equal(m[0], m[2])
    small = center_square(1, 32)
    assert int((small == 0).sum()) == 20 * 20


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_salt_pepper_covers_the_requested_fraction(p: float) -> None:
    m = salt_pepper(500, 64, seed=3, p=p)
    hidden = 1.0 - float(m.mean())
    assert abs(hidden - p) < 0.02, hidden
    # 8x8 blocks: every aligned block is all hidden or all observed
    blocks = m.unfold(2, 8, 8).unfold(3, 8, 8)  # (N, 1, 8, 8, 8, 8)
    flat = blocks.reshape(*blocks.shape[:4], -1)
    assert bool((flat.min(-1).values == flat.max(-1).values).all())


def test_masks_are_reproducible_by_seed() -> None:
    for spec in [MaskSpec(kind="salt_pepper", p=0.3), MaskSpec(kind="random_square", hole=10)]:
        a = make_masks(spec.model_copy(update={"seed": 7}), 20, 32)
        b = make_masks(spec.model_copy(update={"seed": 7}), 20, 32)
        c = make_masks(spec.model_copy(update={"seed": 8}), 20, 32)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_salt_pepper_patch_size_reaches_the_masks() -> None:
    m = make_masks(MaskSpec(kind="salt_pepper", p=0.5, patch=4), 50, 32)
    blocks = m.unfold(2, 4, 4).unfold(3, 4, 4).reshape(50, 1, 8, 8, 16)  # 4x4 blocks
    assert bool((blocks.min(-1).values == blocks.max(-1).values).all())
    coarse = m.unfold(2, 8, 8).unfold(3, 8, 8).reshape(50, 1, 4, 4, 64)  # not 8x8 blocks
    assert not bool((coarse.min(-1).values == coarse.max(-1).values).all())


@pytest.mark.parametrize(
    "spec, tag",
    [
        (MaskSpec(kind="center_square"), "center"),
        (MaskSpec(kind="salt_pepper", p=0.3), "sp30"),
        (MaskSpec(kind="salt_pepper", p=0.3, patch=4), "sp30b4"),
        (MaskSpec(kind="random_square", hole=32), "sq32"),
        (MaskSpec(kind="random_square", hole=10, seed=2), "sq10s2"),
        (MaskSpec(kind="salt_pepper", p=0.05, patch=2, seed=11), "sp5b2s11"),
    ],
)
def test_mask_tags_round_trip_every_parameter(spec: MaskSpec, tag: str) -> None:
    import re

    assert spec.tag == tag and re.fullmatch(MASK_TAG_PATTERN, tag)
    # the tag keeps what the family uses (center_square and random_square ignore p and patch)
    used = {"kind", "seed", *spec.params()}
    assert MaskSpec.from_tag(tag).model_dump(include=used) == spec.model_dump(include=used)


def test_settings_files_carry_the_mask_and_only_what_an_evaluation_takes(tmp_path) -> None:
    """An inpainting job's settings file gives back its mask exactly; a setting the evaluation
    does not take, or an unknown key, is an error that names it."""
    import yaml

    from lsnf.evaluation.registry import EVALUATIONS, settings_of

    spec = MaskSpec(kind="salt_pepper", p=0.3, patch=4, seed=5)
    path = tmp_path / "inpainting-sp30b4s5.yaml"
    path.write_text(yaml.safe_dump({"mask": spec.model_dump(mode="json"), "completions": 3}))
    settings = settings_of(EVALUATIONS["inpainting"], yaml.safe_load(path.read_text()), "f")
    assert settings.mask == spec and settings.completions == 3
    with pytest.raises(ConfigError, match="anomaly does not take completions"):
        settings_of(EVALUATIONS["anomaly"], {"completions": 3}, "f")
    with pytest.raises(ConfigError, match="mask.kind"):
        settings_of(EVALUATIONS["inpainting"], {"mask": {"kind": "circle"}}, "f")


def test_random_square_hides_exactly_one_square_per_image() -> None:
    m = random_square(50, 32, seed=0, hole=12)
    assert ((m == 0).flatten(1).sum(1) == 144).all()
    tops = torch.stack([(mi[0] == 0).nonzero()[:, 0].min() for mi in m])
    assert tops.unique().numel() > 5  # positions vary


def test_bad_mask_parameters() -> None:
    with pytest.raises(ConfigError, match="kind"):
        validated(MaskSpec, {"kind": "stripes"}, "test")
    with pytest.raises(ConfigError, match="whole percentage"):
        _ = MaskSpec(kind="salt_pepper", p=0.333).tag
    with pytest.raises(ConfigError, match="malformed mask tag"):
        MaskSpec.from_tag("sp")
    with pytest.raises(ValueError, match="fraction"):
        salt_pepper(1, 8, p=1.5)
    with pytest.raises(ValueError, match="square size"):
        random_square(1, 8, hole=9)
