"""Inpainting/recovery completion (docs/method.md §7.4): observed pixels kept, hidden ones never
read."""

from __future__ import annotations

import math

import pytest
import torch

from lsnf.config import MaskSpec
from lsnf.core.completion import complete
from lsnf.core.inference import InferenceSettings
from lsnf.core.masks import center_square, make_masks, salt_pepper
from lsnf.core.model import build_model
from lsnf.metrics.inpainting import hole_metrics


@pytest.fixture
def celeba_like(make_config):
    cfg = make_config(
        model={"generator": "celeba64", "latent_dim": 4, "ngf": 2, "channels": 3, "image_size": 64}
    )
    return build_model(cfg).eval()


def test_completion_keeps_observed_pixels_and_ignores_hidden_ones(celeba_like) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = center_square(2, 64)
    poisoned = torch.where(mask.bool(), x, torch.full_like(x, float("nan")))
    settings = InferenceSettings(steps=5, step_size=0.1)
    a = complete(celeba_like, x, mask, 3, settings, torch.Generator().manual_seed(1))
    b = complete(celeba_like, poisoned, mask, 3, settings, torch.Generator().manual_seed(1))
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
    """Holes of any size and shape get SSIM, also at the image edge; none: NaN."""
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mask = torch.ones(4, 1, 28, 28)
    mask[0, :, 24:28, 0:8] = 0  # 4 x 8 box at the edge
    mask[1, :, 10:15, 10:17] = 0  # 5 x 7 box
    mask[2, :, 0:2, 0:2] = 0  # 2 x 2
    m = hole_metrics(x, x.clone(), mask)
    assert torch.allclose(m["ssim"][:3], torch.ones(3), atol=1e-6) and torch.isnan(m["ssim"][3])


def _mnist_test_images(n: int = 64) -> torch.Tensor:
    from lsnf.config import DataConfig
    from lsnf.core.pixels import to_model_scale
    from lsnf.data.splits import load_split

    return to_model_scale(load_split(DataConfig(), "test").head(n).images)  # (n, 1, 28, 28)


MASK_FAMILIES = [
    MaskSpec(kind="center_square"),
    MaskSpec(kind="salt_pepper", p=0.1),
    MaskSpec(kind="salt_pepper", p=0.5),
    MaskSpec(kind="salt_pepper", p=0.5, patch=2),
    MaskSpec(kind="random_square", hole=10),
]


@pytest.mark.parametrize("spec", MASK_FAMILIES, ids=lambda s: s.tag)
def test_changing_observed_pixels_of_the_completion_changes_no_hole_metric(spec) -> None:
    x = _mnist_test_images()
    mask = make_masks(spec, len(x), 28)
    g = torch.Generator().manual_seed(1)
    completion = torch.where(mask.bool(), x, torch.rand(x.shape, generator=g) * 2 - 1)
    other = torch.where(mask.bool(), torch.rand(x.shape, generator=g) * 2 - 1, completion)
    a, b = hole_metrics(x, completion, mask), hole_metrics(x, other, mask)
    for key in ("mse", "psnr", "ssim"):
        assert torch.equal(a[key].nan_to_num(), b[key].nan_to_num()), key


@pytest.mark.parametrize("spec", MASK_FAMILIES, ids=lambda s: s.tag)
def test_noise_in_the_hole_scores_ssim_near_zero_for_every_mask_family(spec) -> None:
    """A completion whose hidden pixels are uniform noise shares no structure with the truth;
    its hole SSIM is about 0 whatever the mask (bounding-box SSIM gave 0.24-0.33 for
    salt-and-pepper, from the observed pixels inside the box). The truth itself scores 1."""
    x = _mnist_test_images()
    mask = make_masks(spec, len(x), 28)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
    ssim = hole_metrics(x, torch.where(mask.bool(), x, noise), mask)["ssim"]
    assert abs(float(ssim.nanmean())) < 0.02, float(ssim.nanmean())
    assert float(hole_metrics(x, x, mask)["ssim"].nanmean()) == pytest.approx(1.0)
