"""Pixel scales, converted in one place (docs/method.md §8).

Three scales meet in lsnf: datasets are held as ``uint8`` in [0, 255]; the generator's Tanh
works in [-1, 1] (the model's scale, and that of the reconstruction MSE); hole metrics, grids
and the recovery error use [0, 1]. FID feature extractors take ``uint8``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["from_unit_interval", "to_model_scale", "to_uint8", "to_unit_interval"]


def to_model_scale(images_u8: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]: ``x / 127.5 - 1``."""
    return images_u8.float() / 127.5 - 1.0


def to_unit_interval(x: Tensor) -> Tensor:
    """float [-1, 1] -> float [0, 1]: ``(x + 1) / 2`` (not clamped)."""
    return (x + 1.0) / 2.0


def from_unit_interval(x: Tensor) -> Tensor:
    """float [0, 1] -> float [-1, 1]: ``2x - 1`` (the inverse of :func:`to_unit_interval`)."""
    return x * 2.0 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """float [-1, 1] -> uint8 [0, 255] on the CPU: ``round((x + 1) * 127.5)``, clamped."""
    return ((x.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
