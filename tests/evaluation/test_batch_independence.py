"""Evaluation does not depend on the batch (docs/method.md §5.3): every example's z0, Langevin
noise and prior samples come from its own stream (lsnf.core.noise.ExampleNoise), so the batch size,
and any sharding of the split, change no per-example number."""

from __future__ import annotations

import pytest
import torch

from lsnf.core.inference import InferenceSettings, anomaly_scores, reconstruction_errors
from lsnf.core.model import build_model
from lsnf.core.noise import BLOCK, ExampleNoise
from lsnf.core.sampling import sample_images
from lsnf.metrics.inpainting import evaluate_completion

N = 300  # more than one stream block, so batches straddle a block boundary
SMALL, LARGE = 37, 1000


def _model(make_config, prior: str):
    cfg = make_config(
        model={"generator": "mnist", "ngf": 8, "latent_dim": 8, "channels": 1, "image_size": 28},
        prior={"kind": prior},
    )
    model = build_model(cfg)
    with torch.no_grad():  # a trained-looking model: non-trivial prior and BatchNorm statistics
        for p in model.prior.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        model.train()
        model.decode(torch.randn(64, 8, generator=torch.Generator().manual_seed(2)))
    return model.eval()


def _images(n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)


def test_example_noise_rows_belong_to_examples_not_to_ranges() -> None:
    whole = ExampleNoise(5, 0, N, "cpu")
    parts = [ExampleNoise(5, a, min(a + SMALL, N), "cpu") for a in range(0, N, SMALL)]
    for _ in range(3):  # successive draws stay aligned
        expected = whole.normal(4, torch.float64)
        got = torch.cat([p.normal(4, torch.float64) for p in parts])
        assert torch.equal(got, expected)
    other_seed = ExampleNoise(6, 0, N, "cpu").normal(4, torch.float64)
    assert not torch.allclose(other_seed[:BLOCK], expected[:BLOCK])
    rest = N - BLOCK  # the next block's stream is not the first one's
    assert not torch.allclose(expected[:rest], expected[BLOCK:])


@pytest.mark.parametrize("prior", ["flow", "gaussian", "ebm"])
def test_scores_and_reconstructions_do_not_depend_on_the_batch_size(make_config, prior: str):
    model, images = _model(make_config, prior), _images()
    at = lambda b: InferenceSettings(steps=8, step_size=0.1, batch_size=b, seed=4)
    small = anomaly_scores(model, images, at(SMALL))
    large = anomaly_scores(model, images, at(LARGE))
    assert small.std() > 0
    assert torch.allclose(small, large, rtol=1e-5, atol=1e-5)
    shard = anomaly_scores(model, images[100:], at(SMALL))  # another sharding: not the same rows
    assert not torch.allclose(shard, large[100:], rtol=1e-5, atol=1e-5)
    errors = lambda b: reconstruction_errors(model, images, at(b), stops=(2, 8))
    for k, v in errors(SMALL).items():
        assert torch.allclose(v, errors(LARGE)[k], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("init", "noise"), [("prior", False), ("normal", True)])
def test_completions_do_not_depend_on_the_batch_size(make_config, init: str, noise: bool):
    """Inpainting (z0 a prior sample: the latent EBM's needs prior Langevin) and recovery with
    noisy re-inference: each image's completions are its own."""
    model, images = _model(make_config, "ebm"), _images(120)
    masks = torch.ones(120, 1, 28, 28)
    masks[:, :, 8:20, 8:20] = 0
    at = lambda b: InferenceSettings(steps=6, step_size=0.1, batch_size=b, seed=7, noise=noise)
    _, _, small = evaluate_completion(model, images, masks, 3, at(SMALL), init)
    _, _, large = evaluate_completion(model, images, masks, 3, at(LARGE), init)
    assert small["mse"].std() > 0
    for key in ("mse", "ssim"):
        assert torch.allclose(small[key], large[key], rtol=1e-5, atol=1e-5), key


@pytest.mark.parametrize("prior", ["flow", "ebm"])
def test_samples_do_not_depend_on_the_batch_size(make_config, prior: str) -> None:
    model = _model(make_config, prior)
    small, large = sample_images(model, N, 9, SMALL), sample_images(model, N, 9, LARGE)
    assert (small.int() - large.int()).abs().max() <= 1  # uint8: at most one rounding step
    assert (small != large).float().mean() < 1e-3


def test_the_default_batch_size_follows_the_device_and_memory(make_config) -> None:
    """null: 100 on CPU (lsnf.core.batch); on CUDA at most 1000, capped by free memory."""
    from lsnf.core.batch import CPU_BATCH, evaluation_batch_size, memory_cap

    model = _model(make_config, "flow")
    assert evaluation_batch_size(None, model) == CPU_BATCH == 100
    assert evaluation_batch_size(7, model) == 7
    assert memory_cap(1000, 10_000_000, 80 * 10**9) == 1000
    assert memory_cap(1000, 10_000_000, 4 * 10**9) == 200  # half of 4 GB at 10 MB an image
    assert memory_cap(1000, 10_000_000, 10**6) == 1
