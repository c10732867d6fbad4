"""Mask generators (PAPER.md §5): coverage, reproducibility, geometry."""

from __future__ import annotations

import pytest
import torch

from lsnf.masks import center_square, make_masks, random_square, salt_pepper


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
    for kind, params in [("salt_pepper", {"p": 0.3}), ("random_square", {"hole": 10})]:
        a = make_masks(kind, 20, 32, seed=7, **params)
        b = make_masks(kind, 20, 32, seed=7, **params)
        c = make_masks(kind, 20, 32, seed=8, **params)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_square_hides_exactly_one_square_per_image() -> None:
    m = random_square(50, 32, seed=0, hole=12)
    assert ((m == 0).flatten(1).sum(1) == 144).all()
    tops = torch.stack([(mi[0] == 0).nonzero()[:, 0].min() for mi in m])
    assert tops.unique().numel() > 5  # positions vary


def test_bad_mask_parameters() -> None:
    with pytest.raises(ValueError, match="unknown mask"):
        make_masks("stripes", 1, 8)
    with pytest.raises(ValueError, match="fraction"):
        salt_pepper(1, 8, p=1.5)
    with pytest.raises(ValueError, match="square size"):
        random_square(1, 8, hole=9)
