"""Sample and reconstruction grids as PNG: images tiled as torchvision's ``make_grid`` tiles
them (2-pixel black borders), written by Pillow. Not torchvision's ``save_image`` itself: its
import (torchvision's models and ops, torch._dynamo) cost a grid job 0.3-0.5 s of its
start-up, a fifth of such a job (docs/results.md, "Per-job fixed cost")."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from lsnf.core.pixels import to_unit_interval
from lsnf.io import atomic_write_bytes

__all__ = ["completion_rows", "reconstruction_pairs", "save_grid", "tile"]


_PAD = 2  # pixels around every tile


def tile(images: Tensor, nrow: int = 10) -> Tensor:
    """Images (N, C, H, W) as one grid (C, rows·(H+2)+2, nrow·(W+2)+2), rows of ``nrow``
    images, row-major, on a black (0) background: the layout of torchvision's ``make_grid``."""
    n, c, h, w = images.shape
    cols, rows = min(nrow, n), -(-n // nrow)
    grid = images.new_zeros(c, rows * (h + _PAD) + _PAD, cols * (w + _PAD) + _PAD)
    for k in range(n):
        y, x = _PAD + (k // nrow) * (h + _PAD), _PAD + (k % nrow) * (w + _PAD)
        grid[:, y : y + h, x : x + w] = images[k]
    return grid


def save_grid(images: Tensor, path: str | Path, nrow: int = 10) -> None:
    """Save images (N, C, H, W) in [-1, 1] as one PNG grid (:func:`tile`), written atomically;
    values map to 0..255 as torchvision's ``save_image`` maps them."""
    from PIL import Image

    x = to_unit_interval(images.detach().float().cpu()).clamp(0, 1)  # (N, C, H, W) in [0, 1]
    grid = tile(x, nrow).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)  # (C, H', W')
    pixels = grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy()
    atomic_write_bytes(path, lambda fh: Image.fromarray(pixels).save(fh, format="png"))


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
