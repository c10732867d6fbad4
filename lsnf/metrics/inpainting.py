"""Completion of hidden pixels and its metrics on the hole (docs/method.md §7.4).

Supervised inpainting: a model trained on complete images infers z from the observed pixels
only, by noise-free Langevin on the masked posterior energy started from a *prior sample*
(not N(0, I)), and pastes g(z) into the hole; several completions per image come from
different initialisations. Unsupervised recovery re-infers z the same way for a model that
only ever saw corrupted images.

Metrics on the hidden pixels only, on the [0, 1] scale: MSE, PSNR (peak 1) and SSIM
(torchmetrics) over each hole's bounding box (11x11 Gaussian window, sigma 1.5; a box smaller
than 11 pixels gets the largest odd uniform window that fits).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lsnf.model import LatentModel, infer_posterior
from lsnf.pixels import to_model_scale, to_unit_interval

__all__ = ["complete", "evaluate_completion", "hole_metrics", "psnr"]


def psnr(mse: Tensor) -> Tensor:
    """PSNR (dB) of mean squared errors on the [0, 1] scale (peak 1): ``10 log10(1 / mse)``;
    ``inf`` where the error is 0 (docs/method.md eq. 7.4)."""
    return 10 * torch.log10(1.0 / mse)


def complete(
    model: LatentModel,
    x: Tensor,
    mask: Tensor,
    n_completions: int,
    steps: int,
    step_size: float,
    generator: torch.Generator,
    init: str = "prior",
) -> Tensor:
    """Completions (K, B, C, H, W) in [-1, 1] of images x (B, C, H, W) with mask (B, 1, H, W).

    Observed pixels are kept; hidden pixels come from g(z*), z* from noise-free masked
    Langevin started at a prior sample (``init="prior"``, inpainting, docs/method.md §7.4) or at
    N(0, I) (``init="normal"``, recovery's test-time re-inference).
    """
    out = []
    for _ in range(n_completions):
        z0 = model.prior.sample(x.shape[0], generator) if init == "prior" else None  # (B, d)
        z, _ = infer_posterior(model, x, steps, step_size, False, generator, mask=mask, z0=z0)
        with torch.no_grad():
            x_hat = model.generator(z)  # (B, C, H, W)
        out.append(torch.where(mask.bool(), x, x_hat))
    return torch.stack(out)  # (K, B, C, H, W)


def _bbox(hidden: Tensor) -> tuple[int, int, int, int]:
    rows = hidden.any(dim=1).nonzero().squeeze(1)
    cols = hidden.any(dim=0).nonzero().squeeze(1)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def hole_metrics(x: Tensor, completed: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Per-image MSE, PSNR and SSIM on the hidden pixels, [0, 1] scale.

    Args:
        x: ground truth (B, C, H, W) in [-1, 1].
        completed: completions (B, C, H, W) in [-1, 1].
        mask: (B, 1, H, W), 0 = hidden. Images with no hidden pixel get NaN.
    Returns:
        ``{"mse": (B,), "psnr": (B,), "ssim": (B,)}``.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim_fn

    a = to_unit_interval(x.float().cpu())  # (B, C, H, W) in [0, 1]
    b = to_unit_interval(completed.float().cpu())
    hidden = (mask.cpu() == 0).expand_as(a)  # (B, C, H, W)
    n_hidden = hidden.flatten(1).sum(1).float()  # (B,)
    sq = torch.where(hidden, (a - b).pow(2), torch.zeros(()))
    mse = sq.flatten(1).sum(1) / n_hidden  # (B,) NaN where nothing is hidden
    ssim = torch.full_like(mse, float("nan"))
    for i in range(a.shape[0]):
        if n_hidden[i] == 0:
            continue
        r0, r1, c0, c1 = _bbox(hidden[i, 0])
        side = min(r1 - r0, c1 - c0)
        if side < 3:
            continue  # SSIM needs a window of at least 3 pixels
        # the standard 11x11 Gaussian window (sigma 1.5); a smaller box gets the largest odd
        # uniform window that fits
        window = (
            {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11}
            if side >= 11
            else {"gaussian_kernel": False, "kernel_size": side if side % 2 else side - 1}
        )
        ssim[i] = ssim_fn(
            b[i : i + 1, :, r0:r1, c0:c1], a[i : i + 1, :, r0:r1, c0:c1],
            data_range=1.0, **window,
        )  # fmt: skip
    return {"mse": mse, "psnr": psnr(mse), "ssim": ssim}


def evaluate_completion(
    model: LatentModel,
    images_u8: Tensor,
    masks: Tensor,
    n_completions: int,
    steps: int,
    step_size: float,
    seed: int,
    batch_size: int = 100,
    init: str = "prior",
) -> tuple[dict[str, float], Tensor]:
    """Mean hole MSE/PSNR/SSIM over images and completions, and the first batch's completions.

    ``init="prior"``: z0 from the prior (inpainting, docs/method.md §7.4); ``init="normal"``:
    z0 from N(0, I) (recovery: test-time re-inference).
    Returns (metrics, completions (K, B, C, H, W)).
    """
    device = next(model.parameters()).device
    model.eval()
    rng = torch.Generator(device=device).manual_seed(seed)
    sums = {"mse": [], "psnr": [], "ssim": []}
    first = None
    for start in range(0, images_u8.shape[0], batch_size):
        x = to_model_scale(images_u8[start : start + batch_size]).to(device)  # (B, C, H, W)
        m = masks[start : start + batch_size].to(device)  # (B, 1, H, W)
        comps = complete(model, x, m, n_completions, steps, step_size, rng, init)
        for k in range(comps.shape[0]):
            for key, v in hole_metrics(x, comps[k], m).items():
                sums[key].append(v)
        if first is None:
            first = comps.cpu()
    metrics = {k: float(torch.cat(v).nanmean()) for k, v in sums.items()}
    metrics["psnr_of_mean_mse"] = float(psnr(torch.tensor(metrics["mse"], dtype=torch.float64)))
    assert first is not None
    return metrics, first
