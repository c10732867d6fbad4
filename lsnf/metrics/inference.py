"""Test-time inference over a whole split, and the metrics that rest on it (PAPER.md §5).

- reconstruction MSE: per pixel, [-1, 1] scale, after noise-free Langevin (K_test steps);
- anomaly score ``S(x) = ||x - g(z*)||^2 / (2 sigma^2) - log p(z*)`` at the inferred z*, and
  AUPRC as the latent-EBM code computes it: ``auc(recall, precision)`` of scikit-learn's
  ``precision_recall_curve``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from lsnf.data import to_unit_range
from lsnf.model import LatentModel, infer_posterior

__all__ = ["InferenceSettings", "anomaly_scores", "auprc", "infer_split", "reconstruction_mse"]


@dataclass(frozen=True)
class InferenceSettings:
    """Test-time posterior inference (PAPER.md §2): noise off, ``steps`` = K_test."""

    steps: int
    step_size: float
    batch_size: int = 100
    seed: int = 0

    def describe(self) -> dict[str, object]:
        return {"steps": self.steps, "step_size": self.step_size, "noise": False,
                "init": "N(0, I)", "seed": self.seed}  # fmt: skip


def infer_split(
    model: LatentModel, images_u8: Tensor, settings: InferenceSettings
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(x, z*)`` per batch: x (B, C, H, W) in [-1, 1] and z* (B, d) on the model's device.

    z0 comes from one ``torch.Generator`` seeded with ``settings.seed``, so results repeat.
    """
    device = next(model.parameters()).device
    model.eval()
    rng = torch.Generator(device=device).manual_seed(settings.seed)
    for start in range(0, images_u8.shape[0], settings.batch_size):
        x = to_unit_range(images_u8[start : start + settings.batch_size]).to(device)  # (B,C,H,W)
        z, _ = infer_posterior(model, x, settings.steps, settings.step_size, False, rng)
        yield x, z


@torch.no_grad()
def _sq_err_and_scores(model: LatentModel, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    sq_err = (x - model.generator(z)).pow(2).flatten(1).mean(dim=1)  # (B,) per-pixel MSE
    score = model.energy(z, x)  # (B,) S(x)
    return sq_err, score


def reconstruction_mse(model: LatentModel, images_u8: Tensor, settings: InferenceSettings) -> float:
    """Mean per-pixel squared error on [-1, 1] after test-time inference (PAPER.md §5)."""
    errs = [_sq_err_and_scores(model, x, z)[0] for x, z in infer_split(model, images_u8, settings)]
    return float(torch.cat(errs).mean())


def anomaly_scores(model: LatentModel, images_u8: Tensor, settings: InferenceSettings) -> Tensor:
    """``S(x)`` for every image (N,), higher = more anomalous (PAPER.md §5)."""
    scores = [
        _sq_err_and_scores(model, x, z)[1] for x, z in infer_split(model, images_u8, settings)
    ]
    return torch.cat(scores).cpu()


def auprc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the precision-recall curve, anomalies as positives (scikit-learn)."""
    from sklearn.metrics import auc, precision_recall_curve

    labels = is_anomaly.cpu().numpy()
    if labels.min() == labels.max():
        raise ValueError("AUPRC needs both normal and anomalous examples in the test split")
    precision, recall, _ = precision_recall_curve(labels, scores.cpu().double().numpy())
    return float(auc(recall, precision))
