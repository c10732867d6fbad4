"""Sample and reconstruction grids as PNG (torchvision's ``save_image``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lsnf.checkpoint import atomic_write_bytes

__all__ = ["reconstruction_pairs", "save_grid"]


def save_grid(images: Tensor, path: str | Path, nrow: int = 10) -> None:
    """Save images (N, C, H, W) in [-1, 1] as one PNG grid, written atomically."""
    from torchvision.utils import save_image

    x = (images.detach().float().cpu() + 1.0) / 2.0  # (N, C, H, W) in [0, 1]
    atomic_write_bytes(path, lambda fh: save_image(x.clamp(0, 1), fh, nrow=nrow, format="png"))


def reconstruction_pairs(x: Tensor, x_hat: Tensor) -> Tensor:
    """Interleave rows of originals and reconstructions: (2N, C, H, W), row i then its recon."""
    return torch.stack([x.cpu(), x_hat.cpu()], dim=1).flatten(0, 1)
