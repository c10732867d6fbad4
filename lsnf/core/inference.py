"""Test-time inference over a whole split, and the per-image quantities it gives (docs/method.md
§5.3, §7.1-§7.2); AUPRC and AUROC over those scores are lsnf.metrics.anomaly.

- reconstruction error: per image, per pixel, [-1, 1] scale, after noise-free Langevin
  (K_test steps);
- anomaly score ``S(x) = ||x - g(z*)||^2 / (2 sigma^2) - log p(z*)`` at the inferred z* (the
  LFBM authors' ``train_mnist.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from lsnf.config import EvaluationConfig, RunConfig
from lsnf.core.model import LatentModel, infer_posterior
from lsnf.core.noise import ExampleNoise
from lsnf.core.pixels import to_model_scale

__all__ = [
    "InferenceSettings",
    "anomaly_scores",
    "infer_split",
    "reconstruction_errors",
    "scores_and_errors",
    "step_counts",
]


@dataclass(frozen=True)
class InferenceSettings:
    """Test-time posterior inference (docs/method.md §5.3): ``steps`` = K_test, noise off unless
    asked for (the authors' recovery protocol), BatchNorm with running statistics unless
    ``batchnorm="batch"`` (the authors' anomaly scoring)."""

    steps: int
    step_size: float
    batch_size: int = 100
    seed: int = 0
    noise: bool = False
    batchnorm: str = "running"

    @classmethod
    def create(cls, cfg: RunConfig, ev: EvaluationConfig, model: LatentModel) -> InferenceSettings:
        """The evaluation's settings where it sets them, else the run config's; the batch size
        for ``model``'s device where it is null (lsnf.core.batch)."""
        from lsnf.core.batch import evaluation_batch_size

        return cls(
            steps=ev.test_steps if ev.test_steps is not None else cfg.inference.test_steps,
            step_size=ev.step_size if ev.step_size is not None else cfg.inference.test_step_size,
            batch_size=evaluation_batch_size(ev.batch_size, model),
            seed=ev.seed,
            noise=ev.noise,
            batchnorm=ev.batchnorm,
        )

    def prepare(self, model: LatentModel) -> torch.device:
        """Put ``model`` in the mode these settings score in; return its device."""
        model.train(self.batchnorm == "batch")
        return next(model.parameters()).device

    def streams(self, start: int, stop: int, device: torch.device) -> ExampleNoise:
        """The z0, Langevin noise and prior samples of examples ``start .. stop - 1``: each
        example's own, whatever the batch (docs/method.md §5.3)."""
        return ExampleNoise(self.seed, start, stop, device)

    def describe(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "step_size": self.step_size,
            "noise": self.noise,
            "init": "N(0, I)",
            "seed": self.seed,
            "batchnorm": self.batchnorm,
            "batch_size": self.batch_size,
        }


def infer_split(
    model: LatentModel,
    images_u8: Tensor,
    settings: InferenceSettings,
    stops: tuple[int, ...] | None = None,
) -> Iterator[tuple[Tensor, dict[int, Tensor]]]:
    """Yield ``(x, {k: z_k})`` per batch: x (B, C, H, W) in [-1, 1] and the latents (B, d) after
    each step count ``k`` of ``stops`` (ascending; default: only ``settings.steps``) along one
    Langevin trajectory, so the latents at ``settings.steps`` do not depend on ``stops``.

    z0 (and noise, if on) come from each example's stream of ``settings.seed``
    (:meth:`InferenceSettings.noise`), so results repeat and do not depend on the batch size.
    """
    device = settings.prepare(model)
    stops = stops or (settings.steps,)
    n = images_u8.shape[0]
    for start in range(0, n, settings.batch_size):
        stop = min(start + settings.batch_size, n)
        x = to_model_scale(images_u8[start:stop]).to(device)  # (B, C, H, W)
        rng = settings.streams(start, stop, device)
        zs, z, done = {}, None, 0
        for k in stops:  # continuing a trajectory draws the same noise as running it at once
            z, _ = infer_posterior(
                model, x, k - done, settings.step_size, settings.noise, rng, z0=z
            )
            zs[k], done = z, k
        yield x, zs


def step_counts(steps: int, points: int = 5) -> tuple[int, ...]:
    """``steps / 2^j`` for j = points-1 .. 0 (rounded, at least 1, distinct): where the
    reconstruction error is also read along the trajectory (the K_test-sensitivity plot)."""
    return tuple(sorted({max(1, round(steps / 2**j)) for j in range(points)}))


@torch.no_grad()
def _sq_err_and_scores(model: LatentModel, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    sq_err = (x - model.decode(z)).pow(2).flatten(1).mean(dim=1)  # (B,) per-pixel MSE
    score = model.energy(z, x)  # (B,) S(x)
    return sq_err, score


def reconstruction_errors(
    model: LatentModel,
    images_u8: Tensor,
    settings: InferenceSettings,
    stops: tuple[int, ...] | None = None,
) -> dict[int, Tensor]:
    """Per-image mean squared error per pixel on [-1, 1] (N,) after each step count of
    ``stops`` (default: ``settings.steps``) of test-time inference (docs/method.md §7.1)."""
    errs: dict[int, list[Tensor]] = {}
    for x, zs in infer_split(model, images_u8, settings, stops):
        for k, z in zs.items():
            errs.setdefault(k, []).append(_sq_err_and_scores(model, x, z)[0])
    return {k: torch.cat(v).cpu() for k, v in errs.items()}


def anomaly_scores(model: LatentModel, images_u8: Tensor, settings: InferenceSettings) -> Tensor:
    """``S(x)`` for every image (N,), higher = more anomalous (docs/method.md eq. 7.2)."""
    return scores_and_errors(model, images_u8, settings)[0]


def scores_and_errors(
    model: LatentModel, images_u8: Tensor, settings: InferenceSettings
) -> tuple[Tensor, Tensor]:
    """``S(x)`` (N,) (eq. 7.2) and the reconstruction error per pixel on [-1, 1] (N,) (§7.1)
    of every image, both at the same ``z*`` (``settings.steps`` of test-time inference)."""
    pairs = [_sq_err_and_scores(model, x, zs[settings.steps]) for x, zs in infer_split(
        model, images_u8, settings
    )]  # fmt: skip
    return torch.cat([p[1] for p in pairs]).cpu(), torch.cat([p[0] for p in pairs]).cpu()
