"""Ancestral samples for evaluation, validation and ``lsnf.load(...).sample`` (docs/method.md §1,
§5.3): sample ``i`` of a seed comes from its own stream (lsnf.core.noise.ExampleNoise), so the
batch size, and which of the three asks, changes none."""

from __future__ import annotations

import torch
from torch import Tensor

from lsnf.core.model import LatentModel
from lsnf.core.noise import ExampleNoise
from lsnf.core.pixels import to_uint8

__all__ = ["sample", "sample_images"]


@torch.no_grad()
def sample(model: LatentModel, n: int, seed: int, batch_size: int) -> Tensor:
    """``n`` ancestral samples ``g(z)``, ``z ~ p(z)``, on the model's scale [-1, 1] (n, C, H, W),
    drawn in batches of ``batch_size``; sample ``i`` from its own stream of ``seed``."""
    device = next(model.parameters()).device
    stops = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    chunks = [model.sample(b - a, ExampleNoise(seed, a, b, device)) for a, b in stops]
    return torch.cat(chunks)  # (n, C, H, W)


def sample_images(model: LatentModel, n: int, seed: int, batch_size: int) -> Tensor:
    """:func:`sample` as uint8 images (n, C, H, W)."""
    return to_uint8(sample(model, n, seed, batch_size))
