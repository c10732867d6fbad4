"""The opt-in compiled Langevin energy (docs/method.md §5.5, `compile: true`): the same
trajectories as eager up to round-off, one compilation per model mode for a whole training and
any evaluation batch sizes, and its compile time reported."""

from __future__ import annotations

import json

import pytest
import torch

from lsnf.core.inference import InferenceSettings, reconstruction_errors
from lsnf.core.model import build_model, infer_posterior
from lsnf.training.train import fit

pytestmark = pytest.mark.slow  # torch.compile: 5-25 s a test on 2 cores, 45 s in all

torch._dynamo.config.cache_size_limit = 8  # torch's default; a recompiling rule would hit it

TINY = {
    "model": {"generator": "mnist", "ngf": 8, "latent_dim": 8, "channels": 1, "image_size": 28},
    "data": {"synthetic": {"n_train": 96, "n_test": 32, "channels": 1, "image_size": 28}},
    "train": {"epochs": 2, "batch_size": 32, "validate_every": 1, "validation_n": 24},
    "inference": {"steps": 3, "test_steps": 3},
}


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


@pytest.mark.parametrize("prior", ["flow", "ebm"])
def test_compiled_langevin_equals_eager_up_to_round_off(make_config, prior: str) -> None:
    cfg = make_config(**{**TINY, "prior": {"kind": prior}})
    eager = build_model(cfg).train()
    compiled = build_model(cfg.model_copy(update={"compile": True})).train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
    z0 = torch.randn(16, 8, generator=g)
    a, _ = infer_posterior(eager, x, 5, 0.1, True, torch.Generator().manual_seed(1), z0=z0)
    b, _ = infer_posterior(compiled, x, 5, 0.1, True, torch.Generator().manual_seed(1), z0=z0)
    assert (a - z0).abs().max() > 1e-2
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-4), (a - b).abs().max()


def test_a_compiled_training_and_evaluation_compile_once_per_mode(make_config, tmp_path) -> None:
    """Two epochs with validation, then evaluation batches of three sizes: the graphs compiled
    in epoch 1 (learning: train mode; validation: eval mode) serve everything after; the
    compile time is in metrics.jsonl."""
    torch._dynamo.reset()
    cfg = make_config(**{**TINY, "prior": {"kind": "flow"}, "compile": True})
    seen: list[int] = []
    model = fit(cfg, tmp_path, lambda epoch, stats: seen.append(_graphs()))
    # after epoch 0 (validation: eval mode), 1 and 2 (learning: train mode, and validation)
    assert seen[0] >= 1 and seen[1] == seen[2] >= 2, seen
    images = (torch.rand(70, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 255).byte()
    for batch in (32, 25, 7):  # 70 images: batches of 32, 32, 6; 25, 25, 20; 7 x 10
        reconstruction_errors(model, images, InferenceSettings(3, 0.1, batch_size=batch))
    assert _graphs() == seen[-1]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["compile_s"] > 0 for r in rows if r["epoch"] > 0), rows
