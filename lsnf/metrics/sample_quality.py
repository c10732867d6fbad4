"""Sample-quality statistics beside FID, from extractor features (docs/method.md §7.3):
KID, and precision and recall, with their bootstrap replicates.

- KID (Bińkowski et al. 2018): the unbiased estimator of the squared MMD between generated
  features X (n, F) and real features Y (m, F) with torch-fidelity's kernel
  ``k(a, b) = (a·b / F + 1)^3``. Unlike FID it has no bias in n, so values at the small n of a
  CPU run mean what they say, and noise (or any model as far from the data) scores far above 0.
  For n = m it equals torch-fidelity's ``kid_features_to_metric`` with one subset of size n
  (a test holds them equal); the replicates resample the generated samples.
- Precision and recall (Kynkäänniemi et al. 2019, torch-fidelity's ``prc``, k = 3): precision
  is the share of generated samples inside the k-NN ball of some real sample (fidelity),
  recall the share of real samples inside the k-NN ball of some generated sample (diversity).
  Both are means of per-example indicators: precision's replicates resample the generated
  samples, recall's the real ones (the same real images for every model, so two models'
  recall replicates are paired).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["PRC_NEIGHBORHOOD", "kid", "kid_replicates", "precision_recall_hits"]

PRC_NEIGHBORHOOD = 3  # k of the k-NN balls (torch-fidelity's default)


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """torch-fidelity's KID kernel ``(a·b / F + 1)^3`` (n, m)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid_replicates(generated: Tensor, real: Tensor, weights: np.ndarray) -> np.ndarray:
    """KID of the generated set resampled by each row of ``weights`` (B, n) (counts of each
    generated sample) against the fixed real set, (B,): the unbiased MMD² estimator evaluated on
    each resampled set, whose distinct-pair sums leave out each position's pair with itself."""
    x = generated.double().cpu().numpy()  # (n, F)
    y = real.double().cpu().numpy()  # (m, F)
    n, m = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    xx = (np.einsum("bi,ij,bj->b", weights, k_xx, weights) - weights @ np.diag(k_xx)) / (
        n * (n - 1)
    )  # (B,)
    xy = weights @ k_xy.sum(axis=1) / (n * m)  # (B,)
    return xx + yy - 2 * xy


def kid(generated: Tensor, real: Tensor) -> float:
    """KID of generated features (n, F) against real features (m, F) (module docstring)."""
    return float(kid_replicates(generated, real, np.ones((1, generated.shape[0])))[0])


def _kth_neighbour_distance(features: Tensor, k: int) -> Tensor:
    """Distance of each row to its k-th nearest other row (N,) (itself is the 0th)."""
    return torch.cdist(features, features).kthvalue(k + 1, dim=1).values


def precision_recall_hits(
    generated: Tensor, real: Tensor, k: int = PRC_NEIGHBORHOOD
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example indicators of precision and recall (module docstring): for each generated
    sample (n,), whether it lies in some real sample's k-NN ball; for each real sample (m,),
    whether it lies in some generated sample's k-NN ball. Their means are torch-fidelity's
    precision and recall (features_1 = generated, features_2 = real)."""
    g, r = generated.float().cpu(), real.float().cpu()
    radius_g, radius_r = _kth_neighbour_distance(g, k), _kth_neighbour_distance(r, k)  # (n,), (m,)
    dist = torch.cdist(r, g)  # (m, n)
    recall = (dist <= radius_g[None, :]).any(dim=1)  # (m,)
    precision = (dist.T <= radius_r[None, :]).any(dim=1)  # (n,)
    return precision.double().numpy(), recall.double().numpy()
