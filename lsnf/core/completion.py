"""Completion of hidden pixels (docs/method.md §7.4): a model infers z from the observed pixels
only, by Langevin on the masked posterior energy, and pastes g(z*) into the hole. Supervised
inpainting starts at a *prior sample* (not N(0, I)), several completions per image from
different initialisations; unsupervised recovery re-infers z from N(0, I). Its metrics on the
hole: lsnf.metrics.inpainting."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from lsnf.core.inference import InferenceSettings
from lsnf.core.model import LatentModel, infer_posterior
from lsnf.core.noise import ExampleNoise
from lsnf.core.pixels import to_model_scale

__all__ = ["complete", "completion_batches"]


def complete(
    model: LatentModel,
    x: Tensor,
    mask: Tensor,
    n_completions: int,
    settings: InferenceSettings,
    generator: torch.Generator | ExampleNoise,
    init: str = "prior",
) -> Tensor:
    """Completions (K, B, C, H, W) in [-1, 1] of images x (B, C, H, W) with mask (B, 1, H, W).

    Observed pixels are kept; hidden pixels come from g(z*), z* from masked Langevin (noise-free
    unless ``settings.noise``) started at a prior sample (``init="prior"``, inpainting,
    docs/method.md §7.4) or at N(0, I) (``init="normal"``, recovery's re-inference).
    """
    out = []
    s = settings
    for _ in range(n_completions):
        z0 = model.prior.sample(x.shape[0], generator) if init == "prior" else None  # (B, d)
        z, _ = infer_posterior(model, x, s.steps, s.step_size, s.noise, generator, mask, z0)
        with torch.no_grad():
            x_hat = model.decode(z)  # (B, C, H, W)
        out.append(torch.where(mask.bool(), x, x_hat))
    return torch.stack(out)  # (K, B, C, H, W)


def completion_batches(
    model: LatentModel,
    images_u8: Tensor,
    masks: Tensor,
    n_completions: int,
    settings: InferenceSettings,
    init: str = "prior",
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """:func:`complete` over uint8 images (N, C, H, W) and masks (N, 1, H, W) in batches of
    ``settings.batch_size``: yields x (B, C, H, W) in [-1, 1], its mask and its completions
    (K, B, C, H, W); each image's draws are its own (docs/method.md §5.3)."""
    device = settings.prepare(model)
    n = images_u8.shape[0]
    for start in range(0, n, settings.batch_size):
        stop = min(start + settings.batch_size, n)
        x = to_model_scale(images_u8[start:stop]).to(device)  # (B, C, H, W)
        m = masks[start:stop].to(device)  # (B, 1, H, W)
        rng = settings.streams(start, stop, device)  # each image's completions' own draws
        yield x, m, complete(model, x, m, n_completions, settings, rng, init)
