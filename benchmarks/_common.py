"""Shared set-up of the A/B scripts: paper-shaped models and their inputs (timing:
``lsnf.bench.interleaved_min``)."""

from __future__ import annotations

import torch

from lsnf.bench import PAPER_SHAPES
from lsnf.config import config_from_dict
from lsnf.core.model import LatentModel, batchnorm_statistics_kept, build_model


def paper_model(shape: str, prior: str = "flow", precision: str = "fp32") -> LatentModel:
    """The paper's ``shape`` (lsnf.bench.PAPER_SHAPES) with ``prior``, in training mode."""
    model = {k: v for k, v in PAPER_SHAPES[shape].items() if k != "K"}
    cfg = config_from_dict({"model": model, "prior": {"kind": prior}, "precision": precision})
    return build_model(cfg).train()


def batch(model: LatentModel, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, C, H, W) uniform in [-1, 1] of the model's shape, and z0 (n, d)."""
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, model.latent_dim, generator=g)  # (n, d)
    with torch.no_grad(), batchnorm_statistics_kept(model):
        shape = model.decode(z0[:2]).shape[1:]
    return torch.rand(n, *shape, generator=g) * 2 - 1, z0
