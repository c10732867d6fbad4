"""A trained model as a Python object: ``lsnf.load(path)`` (docs/usage.md, "In Python").

Each method is the evaluation layer's own code (docs/method.md §5.3, §7), so a score here is
the score ``lsnf eval anomaly`` computes for the same image, settings and seed.

Scales (docs/method.md §8): images go in as uint8 ``[0, 255]`` or floats in ``[0, 1]``, torch
tensors or numpy arrays, in torchvision's layout (N, C, H, W); floats are quantised to 8 bits
first, as every dataset is held. Images come out as floats in ``[0, 1]`` (the generator's
range, not clamped). Latents are (N, d) floats on the model's device; results are on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lsnf.config import EvaluationConfig, RunConfig
from lsnf.core.completion import completion_batches
from lsnf.core.inference import InferenceSettings, anomaly_scores, infer_split
from lsnf.core.pixels import from_unit_interval, to_uint8, to_unit_interval
from lsnf.core.sampling import sample
from lsnf.errors import UserError
from lsnf.training.checkpoint import TrainedModel, load_model

__all__ = ["Model", "load"]


def _as_uint8(images: Tensor | np.ndarray, shape: tuple[int, int, int]) -> Tensor:
    """uint8 (N, C, H, W) of images given as uint8 or as floats in [0, 1] (module docstring), as
    a torch tensor or a numpy array (channels first either way)."""
    if not isinstance(images, Tensor):
        if not hasattr(images, "__array__"):
            raise UserError(
                f"images of type {type(images).__name__}; give a torch tensor or a numpy array "
                f"(N, C, H, W), uint8 or floats in [0, 1]"
            )
        images = torch.from_numpy(np.ascontiguousarray(images))
    if images.ndim == 3:
        images = images.unsqueeze(0)  # one image (C, H, W)
    if tuple(images.shape[1:]) != shape:
        raise UserError(
            f"images of shape {tuple(images.shape)}; this model takes (N, C, H, W) = "
            f"(N, {', '.join(map(str, shape))}) (torchvision layout: channels first)"
        )
    if images.dtype == torch.uint8:
        return images.cpu()
    if not images.is_floating_point():
        raise UserError(f"images of dtype {images.dtype}; give uint8 or floats in [0, 1]")
    if images.min() < 0 or images.max() > 1:
        raise UserError(
            f"float images span [{float(images.min()):.3g}, {float(images.max()):.3g}]; "
            f"give them in [0, 1] (or as uint8)"
        )
    return to_uint8(from_unit_interval(images))


class Model:
    """A trained lsnf model (LFBM, ABP, LEBM or 2s-ABP): sample, encode, decode, score,
    complete and evaluate its prior. Make one with :func:`load`."""

    def __init__(self, trained: TrainedModel) -> None:
        self.trained = trained
        self.network = trained.model  # the torch module (lsnf.core.model.LatentModel), eval mode

    @property
    def config(self) -> RunConfig:
        """The run config the model was trained with."""
        return self.trained.config

    @property
    def device(self) -> torch.device:
        return self.trained.device

    @property
    def prior(self) -> str:
        """flow (LFBM or 2s-ABP), gaussian (ABP) or ebm (LEBM)."""
        return self.config.prior.kind

    @property
    def latent_dim(self) -> int:
        return self.network.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images it makes and takes."""
        m = self.config.model
        return (m.channels, m.image_size, m.image_size)

    def inference_settings(self, steps: int | None = None, seed: int = 0) -> InferenceSettings:
        """Test-time inference as ``lsnf eval`` runs it: K_test noise-free steps of the run
        config unless ``steps``; each image's z0 from its own stream of ``seed`` (§5.3)."""
        ev = EvaluationConfig(test_steps=steps, seed=seed)
        return InferenceSettings.create(self.config, ev, self.network)

    def sample(self, n: int, seed: int = 0, batch_size: int | None = None) -> Tensor:
        """``n`` ancestral samples ``g(z)``, ``z ~ p(z)`` (docs/method.md §1; the EBM prior by its
        Langevin sampler): images (n, C, H, W) in [0, 1], on the CPU. Sample ``i`` is the one
        ``lsnf eval samples`` and the sample-quality evaluations draw for ``seed`` (§5.3)."""
        self.network.eval()
        batch = batch_size or self.inference_settings(seed=seed).batch_size
        return to_unit_interval(sample(self.network, n, seed, batch)).cpu()  # (n, C, H, W)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """``g(z)`` of latents (N, d): images (N, C, H, W) in [0, 1], on the CPU."""
        self.network.eval()
        return to_unit_interval(self.network.decode(z.to(self.device))).cpu()

    def encode(
        self, images: Tensor | np.ndarray, steps: int | None = None, seed: int = 0
    ) -> Tensor:
        """Posterior inference (docs/method.md §5.3): ``z*`` (N, d) after ``steps`` noise-free
        Langevin steps (default: the run config's K_test) from N(0, I), on the CPU."""
        x = _as_uint8(images, self.image_shape)
        batches = infer_split(self.network, x, settings := self.inference_settings(steps, seed))
        return torch.cat([zs[settings.steps].detach().cpu() for _, zs in batches])  # (N, d)

    def score(self, images: Tensor | np.ndarray, steps: int | None = None, seed: int = 0) -> Tensor:
        """The anomaly score ``S(x)`` (N,), higher = more anomalous (docs/method.md eq. 7.2):
        what ``lsnf eval anomaly`` scores, with the same inference settings and seed."""
        x = _as_uint8(images, self.image_shape)
        return anomaly_scores(self.network, x, self.inference_settings(steps, seed))

    def complete(
        self,
        images: Tensor | np.ndarray,
        mask: Tensor,
        n: int = 1,
        steps: int | None = None,
        seed: int = 0,
    ) -> Tensor:
        """Fill hidden pixels (docs/method.md §7.4): ``mask`` (N, 1, H, W) or (1, H, W), 1 =
        observed; ``n`` completions per image, each from a prior sample, as ``lsnf eval
        inpainting``. Returns (n, N, C, H, W) in [0, 1]: observed pixels kept, hidden ones
        ``g(z*)``."""
        x = _as_uint8(images, self.image_shape)
        m = mask.float().cpu().expand(x.shape[0], 1, *x.shape[2:])  # (N, 1, H, W)
        settings = self.inference_settings(steps, seed)
        parts = [c.cpu() for _, _, c in completion_batches(self.network, x, m, n, settings)]
        return to_unit_interval(torch.cat(parts, dim=1))  # (n, N, C, H, W)

    @torch.no_grad()
    def log_prior(self, z: Tensor) -> Tensor:
        """``log p(z)`` (N,) of latents (N, d) (docs/method.md eq. 2.4; the EBM prior's is
        unnormalised: ``-E(z) + log N(z; 0, I)``), on the CPU."""
        self.network.eval()
        return (-self.network.prior.neg_log_prob(z.to(self.device))).cpu()

    def reconstruct(
        self, images: Tensor | np.ndarray, steps: int | None = None, seed: int = 0
    ) -> Tensor:
        """``g(encode(images))``: reconstructions (N, C, H, W) in [0, 1]."""
        return self.decode(self.encode(images, steps, seed))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"lsnf.Model({self.trained.path}: prior {c.model_kind}, latent_dim {self.latent_dim}, "
            f"images {self.image_shape}, on {self.device})"
        )


def load(path: str | Path, device: str | None = None) -> Model:
    """The trained model in ``path`` (a ``model.pt`` or ``checkpoint.pt`` that ``lsnf train``
    wrote) on ``device`` (default: its run config's). A file of another lsnf checkpoint format
    is refused, naming both formats."""
    return Model(load_model(path, device))
