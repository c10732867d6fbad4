"""Completion of hidden pixels and its metrics on the hole (docs/method.md §7.4).

Supervised inpainting: a model trained on complete images infers z from the observed pixels
only, by noise-free Langevin on the masked posterior energy started from a *prior sample*
(not N(0, I)), and pastes g(z) into the hole; several completions per image come from
different initialisations. Unsupervised recovery re-infers z the same way for a model that
only ever saw corrupted images.

Metrics on the hidden pixels only, on the [0, 1] scale: MSE, PSNR (peak 1) and SSIM whose
local statistics are taken over hidden pixels only (:func:`hole_ssim`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsnf.core.completion import completion_batches
from lsnf.core.inference import InferenceSettings
from lsnf.core.model import LatentModel
from lsnf.core.pixels import to_unit_interval

__all__ = ["evaluate_completion", "hole_metrics", "psnr"]


def psnr(mse: Tensor) -> Tensor:
    """PSNR (dB) of mean squared errors on the [0, 1] scale (peak 1): ``10 log10(1 / mse)``;
    ``inf`` where the error is 0 (docs/method.md eq. 7.4)."""
    return 10 * torch.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """The standard SSIM window: a normalised 2-D Gaussian, (1, 1, size, size), float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    w = g[:, None] * g[None, :]
    return (w / w.sum())[None, None]


def hole_ssim(
    a: Tensor, b: Tensor, hidden: Tensor, c1: float = 0.01**2, c2: float = 0.03**2
) -> Tensor:
    """SSIM of ``b`` against ``a`` on the hidden pixels only (docs/method.md eq. 7.5), (B,).

    SSIM's local means, variances and covariance at each pixel are weighted by the 11x11
    Gaussian window (sigma 1.5) restricted to hidden pixels, so observed pixels never enter a
    statistic; the SSIM map is averaged over the hidden pixels (and channels). A completion
    equal to the truth scores 1; one independent of it scores about 0, for every mask family.
    ``a``, ``b``: (B, C, H, W) on [0, 1]; ``hidden``: bool, broadcastable to them. NaN for an
    image with no hidden pixel.
    """
    import torch.nn.functional as F

    a, b = a.double(), b.double()
    h = hidden.expand_as(a).double()  # (B, C, H, W)
    bc = a.shape[0] * a.shape[1]
    window = _gaussian_window().to(a.device)
    pad = window.shape[-1] // 2

    def local(t: Tensor) -> Tensor:  # window-weighted sum over hidden pixels, (B, C, H, W)
        return F.conv2d((h * t).reshape(bc, 1, *t.shape[2:]), window, padding=pad).view_as(a)

    weight = local(torch.ones_like(a)).clamp_min(1e-12)  # (B, C, H, W)
    mu_a, mu_b = local(a) / weight, local(b) / weight
    var_a = (local(a * a) / weight - mu_a**2).clamp_min(0)
    var_b = (local(b * b) / weight - mu_b**2).clamp_min(0)
    cov = local(a * b) / weight - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )  # (B, C, H, W)
    n = h.flatten(1).sum(1)  # (B,)
    return ((ssim_map * h).flatten(1).sum(1) / n).float()  # NaN where nothing is hidden


def hole_metrics(x: Tensor, completed: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per-image MSE, PSNR and SSIM on the hidden pixels, [0, 1] scale (docs/method.md §7.4).

    Only the hidden pixels of ``completed`` are read: its observed pixels are replaced by the
    truth first, and no metric looks at observed pixels.

    Args:
        x: ground truth (B, C, H, W) in [-1, 1].
        completed: completions (B, C, H, W) in [-1, 1].
        mask: (B, 1, H, W), 0 = hidden. Images with no hidden pixel get NaN.
    Returns:
        ``{"mse": (B,), "psnr": (B,), "ssim": (B,)}``.
    """
    a = to_unit_interval(x.float().cpu())  # (B, C, H, W) in [0, 1]
    hidden = (mask.cpu() == 0).expand_as(a)  # (B, C, H, W)
    b = torch.where(hidden, to_unit_interval(completed.float().cpu()), a)
    n_hidden = hidden.flatten(1).sum(1).float()  # (B,)
    sq = torch.where(hidden, (a - b).pow(2), torch.zeros(()))
    mse = sq.flatten(1).sum(1) / n_hidden  # (B,) NaN where nothing is hidden
    return {"mse": mse, "psnr": psnr(mse), "ssim": hole_ssim(a, b, hidden)}


def evaluate_completion(
    model: LatentModel,
    images_u8: Tensor,
    masks: Tensor,
    n_completions: int,
    settings: InferenceSettings,
    init: str = "prior",
) -> tuple[dict[str, float], Tensor, dict[str, Tensor]]:
    """Hole MSE/PSNR/SSIM per image and completion, their means, and the first batch's
    completions.

    ``init="prior"``: z0 from the prior (inpainting, docs/method.md §7.4); ``init="normal"``:
    z0 from N(0, I) (recovery: test-time re-inference).
    Returns (means over images and completions, completions (K, B, C, H, W) of the first batch,
    per-example values ``{"mse" | "psnr" | "ssim": (N, K)}``).
    """
    per_batch: dict[str, list[Tensor]] = {"mse": [], "psnr": [], "ssim": []}
    first = None
    for x, m, comps in completion_batches(model, images_u8, masks, n_completions, settings, init):
        values = [hole_metrics(x, comps[k], m) for k in range(comps.shape[0])]
        for key in per_batch:
            per_batch[key].append(torch.stack([v[key] for v in values], dim=1))  # (B, K)
        if first is None:
            first = comps.cpu()
    per_example = {k: torch.cat(v) for k, v in per_batch.items()}  # (N, K) each
    metrics = {k: float(v.nanmean()) for k, v in per_example.items()}
    metrics["psnr_of_mean_mse"] = float(psnr(torch.tensor(metrics["mse"], dtype=torch.float64)))
    assert first is not None
    return metrics, first, per_example
