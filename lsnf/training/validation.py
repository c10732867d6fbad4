"""Validation curves during training (docs/method.md §6.5).

At epoch 0 (before learning) and every ``train.validate_every`` epochs (and the last), a model
is scored on the first ``train.validation_n`` images of the validation split, which is carved
out of the training data (docs/protocols.md §1), never the test split:

- ``valid_mse``: reconstruction MSE per pixel ([-1, 1]) after ``train.validation_steps``
  noise-free Langevin steps from z0 drawn with the run's seed (eval-mode BatchNorm), per image;
- ``valid_kid`` (when an extractor is given: generation experiments): KID (docs/method.md
  §7.3) of as many ancestral samples (drawn with the same seed each time) against the
  validation images, in that extractor's features.

Each comes with a trivial reference, what a model that learned nothing reaches: the MSE of
the mean training image, and the KID of uniform noise images. The curves are what
:mod:`lsnf.training.convergence` judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lsnf.config import RunConfig
from lsnf.core.inference import InferenceSettings, reconstruction_errors
from lsnf.core.model import LatentModel
from lsnf.core.sampling import sample_images
from lsnf.data.splits import ImageSplit, load_split
from lsnf.metrics.trivial import mean_image_mse, noise_images
from lsnf.training.convergence import CURVES

__all__ = ["Validator"]


@dataclass
class Validator:
    """Scores a model on the validation images (module docstring)."""

    images: Tensor  # uint8 (n, C, H, W)
    settings: InferenceSettings
    references: dict[str, float]  # curve -> its trivial reference's value
    extractor: Any = None  # lsnf.metrics.fid.ExtractorSpec, or None: no KID
    real_features: Tensor | None = None  # (n, F)
    sample_seed: int = 0
    device: str = "cpu"

    @classmethod
    def create(
        cls, cfg: RunConfig, train: ImageSplit, extractor: str | Path | None, device: str
    ) -> Validator:
        """The validator of run ``cfg`` (its training images ``train`` give the mean image);
        ``extractor``: weights of the domain extractor for KID (None: MSE only)."""
        if cfg.data.validation_fraction == 0:
            from lsnf.errors import UserError

            raise UserError(
                "train.validate_every needs a validation split: set data.validation_fraction "
                "above 0, or train.validate_every: 0 (then this model has no convergence status, "
                "and its comparisons settle from their course alone)"
            )
        valid = load_split(cfg.data, "valid").head(cfg.train.validation_n)
        references = {"valid_mse": mean_image_mse(train.images, valid.images)}
        settings = InferenceSettings(
            steps=cfg.train.validation_steps,
            step_size=cfg.inference.test_step_size,
            batch_size=cfg.train.batch_size,
            seed=cfg.seed,
        )
        out = cls(valid.images, settings, references, sample_seed=cfg.seed + 1, device=device)
        if extractor is not None:
            from lsnf.metrics.fid import DOMAIN, ExtractorSpec, extract_features
            from lsnf.metrics.sample_quality import kid

            out.extractor = ExtractorSpec.create(DOMAIN, extractor)
            out.real_features = extract_features(valid.images, out.extractor, device)
            noise = noise_images(len(valid), valid.shape, cfg.seed)
            noise_features = extract_features(noise, out.extractor, device)
            references["valid_kid"] = kid(noise_features, out.real_features)
        return out

    def describe(self) -> dict[str, Any]:
        """What the curves measure: images, inference, extractor, references."""
        return {
            "split": "valid",
            "n": len(self.images),
            "inference": self.settings.describe(),
            "kid_extractor": None if self.extractor is None else self.extractor.describe(),
            "references": {k: {"of": CURVES[k][1], "value": v} for k, v in self.references.items()},
        }

    def measure(self, model: LatentModel) -> dict[str, float]:
        """The curves' values at the model's current parameters. Leaves the model in eval
        mode."""
        errors = reconstruction_errors(model, self.images, self.settings)[self.settings.steps]
        values = {"valid_mse": float(errors.double().mean())}
        if self.extractor is not None:
            from lsnf.metrics.fid import extract_features
            from lsnf.metrics.sample_quality import kid

            model.eval()
            with torch.no_grad():
                images = sample_images(
                    model, len(self.images), self.sample_seed, self.settings.batch_size
                )  # (n, C, H, W)
            features = extract_features(images, self.extractor, self.device)
            values["valid_kid"] = kid(features, self.real_features)
        return values
