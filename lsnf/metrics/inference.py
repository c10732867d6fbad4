"""Test-time inference over a whole split, and the metrics that rest on it (docs/method.md
§5.3, §7.1-§7.2).

- reconstruction error: per image, per pixel, [-1, 1] scale, after noise-free Langevin
  (K_test steps);
- anomaly score ``S(x) = ||x - g(z*)||^2 / (2 sigma^2) - log p(z*)`` at the inferred z* (the
  LFBM authors' ``train_mnist.py``), and AUPRC as ``auc(recall, precision)`` of scikit-learn's
  ``precision_recall_curve``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from lsnf.config import EvaluationConfig, RunConfig
from lsnf.errors import UserError
from lsnf.model import LatentModel, infer_posterior
from lsnf.pixels import to_model_scale

__all__ = [
    "InferenceSettings",
    "anomaly_scores",
    "auprc",
    "infer_split",
    "reconstruction_errors",
]


@dataclass(frozen=True)
class InferenceSettings:
    """Test-time posterior inference (docs/method.md §5.3): noise off, ``steps`` = K_test."""

    steps: int
    step_size: float
    batch_size: int
    seed: int

    @classmethod
    def create(cls, cfg: RunConfig, ev: EvaluationConfig) -> InferenceSettings:
        """The evaluation's settings where it sets them, else the run config's."""
        return cls(
            steps=ev.test_steps if ev.test_steps is not None else cfg.inference.test_steps,
            step_size=ev.step_size if ev.step_size is not None else cfg.inference.test_step_size,
            batch_size=ev.batch_size,
            seed=ev.seed,
        )

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
        x = to_model_scale(images_u8[start : start + settings.batch_size]).to(device)  # (B,C,H,W)
        z, _ = infer_posterior(model, x, settings.steps, settings.step_size, False, rng)
        yield x, z


@torch.no_grad()
def _sq_err_and_scores(model: LatentModel, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    sq_err = (x - model.generator(z)).pow(2).flatten(1).mean(dim=1)  # (B,) per-pixel MSE
    score = model.energy(z, x)  # (B,) S(x)
    return sq_err, score


def reconstruction_errors(
    model: LatentModel, images_u8: Tensor, settings: InferenceSettings
) -> Tensor:
    """Per-image mean squared error per pixel on [-1, 1] after test-time inference (N,)
    (docs/method.md §7.1)."""
    errs = [_sq_err_and_scores(model, x, z)[0] for x, z in infer_split(model, images_u8, settings)]
    return torch.cat(errs).cpu()


def anomaly_scores(model: LatentModel, images_u8: Tensor, settings: InferenceSettings) -> Tensor:
    """``S(x)`` for every image (N,), higher = more anomalous (docs/method.md eq. 7.2)."""
    scores = [
        _sq_err_and_scores(model, x, z)[1] for x, z in infer_split(model, images_u8, settings)
    ]
    return torch.cat(scores).cpu()


def auprc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the precision-recall curve, anomalies as positives (docs/method.md §7.2)."""
    from sklearn.metrics import auc, precision_recall_curve

    labels = is_anomaly.cpu().numpy()
    if labels.min() == labels.max():
        raise UserError("AUPRC needs both normal and anomalous examples in the test split")
    precision, recall, _ = precision_recall_curve(labels, scores.cpu().double().numpy())
    return float(auc(recall, precision))
