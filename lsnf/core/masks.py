"""Pixel masks for inpainting and learning from incomplete data (docs/method.md §7.5).

A mask is a float tensor (N, 1, H, W) with 1 = observed and 0 = hidden, broadcast over
channels. Every family is a pure function of its parameters and a seed, so the same images get
the same masks in every job.

- ``center_square``: the fixed 40x40 hole of the paper's CelebA-64 inpainting (rows 20-59,
  columns 12-51), scaled to other image sizes;
- ``salt_pepper``: grid-aligned ``patch`` x ``patch`` blocks hidden independently so that a
  fraction ``p`` of the image is hidden (the paper: 8x8 patches, P in 10..90 %);
- ``random_square``: one SxS hole at a random location per image.

A setting (family, parameters, seed) is a :class:`lsnf.config.MaskSpec`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lsnf.config import MASK_KINDS, MaskSpec
from lsnf.errors import UserError

__all__ = ["MASKS", "center_square", "make_masks", "random_square", "salt_pepper"]


def center_square(
    n: int,
    size: int,
    seed: int = 0,
    hole: int = 40,
    top: int = 20,
    left: int = 12,
    reference_size: int = 64,
) -> Tensor:
    """The paper's fixed inpainting hole: ``hole`` pixels square at (``top``, ``left``) of a
    ``reference_size`` image, scaled to ``size``. Same for every image (seed unused)."""
    scale = size / reference_size
    t, c, h = round(top * scale), round(left * scale), max(1, round(hole * scale))
    mask = torch.ones(1, 1, size, size)
    mask[:, :, t : t + h, c : c + h] = 0.0
    return mask.expand(n, -1, -1, -1).contiguous()  # (N, 1, S, S)


def salt_pepper(n: int, size: int, seed: int = 0, p: float = 0.5, patch: int = 8) -> Tensor:
    """Hide ``patch`` x ``patch`` blocks independently with probability ``p`` (fraction hidden
    ``p`` in expectation; the last partial block row/column is included)."""
    if not 0.0 <= p <= 1.0:
        raise UserError(f"salt-and-pepper fraction p must be in [0, 1], got {p}")
    g = torch.Generator().manual_seed(seed)
    blocks = -(-size // patch)  # ceil
    keep = (torch.rand(n, 1, blocks, blocks, generator=g) >= p).float()  # (N, 1, b, b)
    mask = keep.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return mask[:, :, :size, :size].contiguous()  # (N, 1, S, S)


def random_square(n: int, size: int, seed: int = 0, hole: int = 32) -> Tensor:
    """One ``hole`` x ``hole`` square per image, at a uniformly random position."""
    if not 0 < hole <= size:
        raise UserError(f"square size must be in 1..{size}, got {hole}")
    g = torch.Generator().manual_seed(seed)
    tops = torch.randint(0, size - hole + 1, (n,), generator=g)
    lefts = torch.randint(0, size - hole + 1, (n,), generator=g)
    rows = torch.arange(size)
    in_rows = (rows[None, :] >= tops[:, None]) & (rows[None, :] < tops[:, None] + hole)  # (N, S)
    in_cols = (rows[None, :] >= lefts[:, None]) & (rows[None, :] < lefts[:, None] + hole)  # (N, S)
    hidden = in_rows[:, :, None] & in_cols[:, None, :]  # (N, S, S)
    return (~hidden).float().unsqueeze(1)  # (N, 1, S, S)


MASKS: dict[str, Callable[..., Tensor]] = {
    "center_square": center_square,
    "salt_pepper": salt_pepper,
    "random_square": random_square,
}


assert tuple(MASKS) == MASK_KINDS, "one mask function per mask kind of lsnf.config"


def make_masks(spec: MaskSpec, n: int, size: int) -> Tensor:
    """Masks (n, 1, size, size) of the setting ``spec`` (family, parameters, seed)."""
    return MASKS[spec.kind](n, size, spec.seed, **spec.params())
