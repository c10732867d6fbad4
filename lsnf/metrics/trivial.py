"""Trivial references (docs/method.md §6.5, §9): what a model that learned nothing reaches.

A result no better than its trivial reference is a failure to train, whatever its rank among
the priors. Validation curves (:mod:`lsnf.training.validation`) and test evaluations
(:mod:`lsnf.evaluation.evaluate`) share these.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsnf.core.pixels import to_model_scale

__all__ = ["mean_image_mse", "noise_images"]


def noise_images(n: int, shape: tuple[int, int, int], seed: int) -> Tensor:
    """``n`` images of independent uniform uint8 pixels (n, C, H, W): the upper reference of
    sample-quality scores (what a generator that learned nothing could emit)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)


def mean_image_mse(train_u8: Tensor, images_u8: Tensor) -> float:
    """MSE per pixel ([-1, 1]) of the mean training image (of ``train_u8``) as the
    reconstruction of every image of ``images_u8``: the trivial reference of reconstruction."""
    mean_image = to_model_scale(train_u8).double().mean(dim=0, keepdim=True)  # (1, C, H, W)
    return float((to_model_scale(images_u8).double() - mean_image).pow(2).mean())
