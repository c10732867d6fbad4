"""Sample and reconstruction grids as PNG (torchvision's ``save_image``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lsnf.io import atomic_write_bytes
from lsnf.pixels import to_unit_interval

__all__ = ["completion_rows", "reconstruction_pairs", "save_grid"]


def save_grid(images: Tensor, path: str | Path, nrow: int = 10) -> None:
    """Save images (N, C, H, W) in [-1, 1] as one PNG grid, written atomically."""
    from torchvision.utils import save_image

    x = to_unit_interval(images.detach().float().cpu())  # (N, C, H, W) in [0, 1]
    atomic_write_bytes(path, lambda fh: save_image(x.clamp(0, 1), fh, nrow=nrow, format="png"))


def reconstruction_pairs(x: Tensor, x_hat: Tensor) -> Tensor:
    """Interleave rows of originals and reconstructions: (2N, C, H, W), row i then its recon."""
    return torch.stack([x.cpu(), x_hat.cpu()], dim=1).flatten(0, 1)


def completion_rows(x: Tensor, mask: Tensor, completions: Tensor, n_images: int = 8) -> Tensor:
    """Rows of ground truth | masked input (hidden = gray) | K completions:
    ((2 + K) * n, C, H, W) for ``save_grid(..., nrow=2 + K)``."""
    n = min(n_images, x.shape[0])
    x, mask, comps = x[:n].cpu(), mask[:n].cpu(), completions[:, :n].cpu()  # comps (K, n, ...)
    masked = torch.where(mask.bool(), x, torch.zeros(()))  # (n, C, H, W), gray hole
    rows = torch.cat([x.unsqueeze(1), masked.unsqueeze(1), comps.transpose(0, 1)], dim=1)
    return rows.flatten(0, 1)  # (n * (2 + K), C, H, W)
