"""Inpainting/recovery completion (docs/method.md §7.4): observed pixels kept, hidden ones never
read."""

from __future__ import annotations

import math

import pytest
import torch

from lsnf.masks import center_square, salt_pepper
from lsnf.metrics.inpainting import complete, hole_metrics
from lsnf.model import build_model


@pytest.fixture
def celeba_like(make_config):
    cfg = make_config(model={"generator": "celeba64", "latent_dim": 4, "ngf": 2, "channels": 3,
                             "image_size": 64})  # fmt: skip
    return build_model(cfg).eval()


def test_completion_keeps_observed_pixels_and_ignores_hidden_ones(celeba_like) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = center_square(2, 64)
    poisoned = torch.where(mask.bool(), x, torch.full_like(x, float("nan")))
    a = complete(celeba_like, x, mask, 3, 5, 0.1, torch.Generator().manual_seed(1))
    b = complete(celeba_like, poisoned, mask, 3, 5, 0.1, torch.Generator().manual_seed(1))
    assert a.shape == (3, 2, 3, 64, 64)
    keep = mask.bool().expand_as(x)  # (B, C, H, W)
    hole = ~keep
    assert torch.isfinite(b).all()
    for k in range(3):
        assert torch.equal(a[k][keep], x[keep])  # observed pixels kept exactly
        assert torch.equal(a[k][hole], b[k][hole])  # hidden values never read
    assert not torch.equal(a[0][hole], a[1][hole])  # different prior-sample initialisations


def test_hole_metrics_known_values() -> None:
    x = torch.zeros(2, 1, 16, 16)  # 0.5 on the [0, 1] scale
    mask = center_square(2, 16)  # a 10x10 hole
    same = hole_metrics(x, x.clone(), mask)
    assert float(same["mse"][0]) == 0 and math.isinf(float(same["psnr"][0]))
    assert float(same["ssim"][0]) == pytest.approx(1.0)
    shifted = torch.where(mask.bool(), x, x + 0.2)  # +0.1 on [0, 1] in the hole only
    m = hole_metrics(x, shifted, mask)
    assert float(m["mse"][0]) == pytest.approx(0.01, rel=1e-5)
    assert float(m["psnr"][0]) == pytest.approx(20.0, rel=1e-5)
    observed_only = torch.where(mask.bool(), x + 1.0, x)  # errors outside the hole don't count
    assert float(hole_metrics(x, observed_only, mask)["mse"][0]) == 0


def test_salt_pepper_metrics_average_over_hidden_pixels_only() -> None:
    x = torch.zeros(4, 3, 32, 32)
    mask = salt_pepper(4, 32, seed=0, p=0.5)
    noisy = torch.where(mask.bool(), x, torch.full_like(x, 1.0))  # hidden -> +0.5 on [0, 1]
    m = hole_metrics(x, noisy, mask)
    assert torch.allclose(m["mse"], torch.full((4,), 0.25))


def test_ssim_on_small_and_oblong_holes() -> None:
    """Holes smaller than the 11x11 window (e.g. a 4x8 box at an image edge) still get SSIM."""
    x = torch.zeros(3, 1, 28, 28)
    mask = torch.ones(3, 1, 28, 28)
    mask[0, :, 24:28, 0:8] = 0  # 4 x 8 box
    mask[1, :, 10:15, 10:17] = 0  # 5 x 7 box
    mask[2, :, 0:2, 0:2] = 0  # 2 x 2: too small for any window
    m = hole_metrics(x, x.clone(), mask)
    assert torch.allclose(m["ssim"][:2], torch.ones(2), atol=1e-3) and torch.isnan(m["ssim"][2])
