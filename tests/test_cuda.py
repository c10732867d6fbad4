"""What a first GPU run exercises, on CUDA (skipped without a GPU, as on our CI machines;
`.ci/gpu-check` runs them on one): a training iteration in fp32 and bf16, checkpoint round
trip and resume (on CUDA and from a CPU checkpoint), the generator's patch projection and
channels-last layout against cuDNN's own layers, each evaluation's inference on a few images,
FID features with torch-fidelity's ``cuda=True``, and the benchmark's synchronised timing."""

from __future__ import annotations

import json

import pytest
import torch
from workflow_helpers import MNIST_TINY as _TRAINING

from lsnf.layout import CHECKPOINT, METRICS, MODEL
from lsnf.training.checkpoint import load_checkpoint, load_model
from lsnf.training.train import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")

TINY = {
    **_TRAINING,
    "data": {**_TRAINING["data"], "limit": 200},
    "inference": {"steps": 5, "test_steps": 10},
    "train": {**_TRAINING["train"], "epochs": 2},
}


def _cuda_config(make_config, **over):
    return make_config(**{**TINY, "device": "cuda", **over})


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("prior", ["flow", "gaussian", "ebm"])
def test_training_runs_on_cuda(make_config, tmp_path, precision: str, prior: str) -> None:
    cfg = _cuda_config(make_config, precision=precision, prior={"kind": prior})
    model = fit(cfg, tmp_path)
    assert all(p.device.type == "cuda" and p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["epoch"] > 0] == [1, 2]
    assert all(r["loss_g"] > 0 for r in rows if r["epoch"] > 0)
    state = load_checkpoint(tmp_path / MODEL)
    assert state["rng_device"] == "cuda" and state["rng"].numel() == 16
    trained = load_model(tmp_path / MODEL, device="cpu")  # a CUDA checkpoint loads on a CPU
    assert _equal(trained.model.state_dict(), model.state_dict())


def test_deterministic_resume_on_cuda_equals_the_uninterrupted_run(make_config, tmp_path) -> None:
    cfg = _cuda_config(make_config, deterministic=True, train={**TINY["train"], "epochs": 3})
    full = fit(cfg, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill(epoch: int, iteration: int) -> None:
        if epoch == 2 and iteration == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(cfg, tmp_path / "resumed", on_iteration=kill)
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT)["epoch"] == 1
    resumed = fit(cfg, tmp_path / "resumed")
    assert _equal(full.state_dict(), resumed.state_dict())
    again = fit(cfg, tmp_path / "again")  # identical runs, identical bytes (deterministic)
    assert (tmp_path / "full" / MODEL).read_bytes() == (tmp_path / "again" / MODEL).read_bytes()
    assert _equal(full.state_dict(), again.state_dict())


def test_a_cpu_checkpoint_resumes_on_cuda_with_a_reseeded_noise_stream(
    make_config, tmp_path, capsys
) -> None:
    fit(make_config(**{**TINY, "train": {**TINY["train"], "epochs": 1}}), tmp_path)
    capsys.readouterr()
    model = fit(_cuda_config(make_config), tmp_path)  # device is a resumable change
    assert "this run is on cuda" in capsys.readouterr().err
    assert next(model.parameters()).device.type == "cuda"
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r.get("rng_reseeded") for r in rows if r["epoch"] > 0] == [None, 1.0]


@pytest.mark.parametrize("generator", ["mnist", "svhn", "cifar10", "celeba64"])
def test_patch_projection_and_channels_last_agree_with_cudnn(make_config, generator) -> None:
    """Our generator (project_patches GEMM, channels-last) against torch's own layers in NCHW
    (lsnf.bench.research_copy) through cuDNN, forward and input-gradient, in float64 so that
    only a different computation, not round-off, can tell them apart."""
    from lsnf.bench import PAPER_SHAPES, research_copy
    from lsnf.core.model import build_model

    shape = {k: v for k, v in PAPER_SHAPES[generator].items() if k != "K"}
    model = build_model(make_config(model=shape)).double().cuda().eval()
    research = research_copy(model)
    z = torch.randn(8, int(shape["latent_dim"]), generator=torch.Generator().manual_seed(0))
    z = z.double().cuda().requires_grad_(True)
    zr = z.detach().clone().requires_grad_(True)
    ours, theirs = model.generator(z), research.generator(zr)
    assert ours.device.type == "cuda" and ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)
    up = torch.randn_like(ours)
    ours.backward(up), theirs.backward(up)
    torch.testing.assert_close(z.grad, zr.grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("prior", ["flow", "gaussian", "ebm"])
def test_each_evaluations_inference_runs_on_cuda_batch_independently(make_config, prior) -> None:
    """Anomaly scores, reconstructions, inpainting (prior-sample start) and recovery (noisy
    re-inference), and samples, on a few images: finite, on the GPU's per-example streams
    (a batch of 7 equals a batch of 100), as docs/method.md §5.3 says."""
    from lsnf.core.inference import InferenceSettings, anomaly_scores, reconstruction_errors
    from lsnf.core.model import build_model
    from lsnf.core.sampling import sample_images
    from lsnf.metrics.inpainting import evaluate_completion

    cfg = make_config(**{**TINY, "prior": {"kind": prior}})
    model = build_model(cfg).cuda().eval()
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (40, 1, 28, 28), generator=g, dtype=torch.uint8)
    at = lambda b, noise=False: InferenceSettings(
        steps=4, step_size=0.1, batch_size=b, seed=4, noise=noise
    )
    small, large = (anomaly_scores(model, images, at(b)) for b in (7, 100))
    assert torch.isfinite(large).all()
    torch.testing.assert_close(small, large, rtol=1e-4, atol=1e-4)
    for k, v in reconstruction_errors(model, images, at(7), stops=(2, 4)).items():
        torch.testing.assert_close(
            v, reconstruction_errors(model, images, at(100), stops=(2, 4))[k], rtol=1e-4, atol=1e-4
        )
    masks = torch.ones(40, 1, 28, 28)
    masks[:, :, 8:20, 8:20] = 0
    for init, noise in (("prior", False), ("normal", True)):
        _, _, a = evaluate_completion(model, images, masks, 2, at(7, noise), init)
        _, _, b = evaluate_completion(model, images, masks, 2, at(100, noise), init)
        torch.testing.assert_close(a["mse"], b["mse"], rtol=1e-4, atol=1e-4)
    x = sample_images(model, 30, seed=5, batch_size=7)
    assert x.dtype == torch.uint8 and x.shape == (30, 1, 28, 28)
    y = sample_images(model, 30, seed=5, batch_size=100)
    assert (x.int() - y.int()).abs().max() <= 1  # uint8: at most one rounding step


def test_fid_features_on_cuda_match_the_cpus(tmp_path) -> None:
    """torch-fidelity's extractor loop with cuda=True (the domain extractor; exact fp32)."""
    from lsnf.metrics.domain_extractor import DomainCNN
    from lsnf.metrics.fid import DOMAIN, ExtractorSpec, extract_features

    torch.manual_seed(0)
    path = tmp_path / "cnn.pt"
    net = DomainCNN(1, 10)  # untrained: features are features
    state = {"format": "lsnf-domain-extractor-1", "state_dict": net.state_dict()}
    torch.save({**state, "in_channels": 1, "n_classes": 10, "test_accuracy": 0.0}, path)
    spec = ExtractorSpec.create(DOMAIN, path)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (50, 1, 28, 28), generator=g, dtype=torch.uint8)
    on_cpu, on_gpu = extract_features(images, spec, "cpu"), extract_features(images, spec, "cuda")
    assert on_gpu.device.type == "cpu" and on_gpu.shape == on_cpu.shape
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-4, atol=1e-4)


def test_the_benchmark_runs_on_cuda(capsys) -> None:
    from lsnf.bench import run_bench

    rows = run_bench(["mnist"], batch_size=8, blocks=1, steps_per_block=1, device="cuda")
    out = capsys.readouterr().out
    assert "device: cuda" in out and "synchronize" in out
    assert all(0 < r["step_s"] < float("inf") and r["flops"] > 0 for r in rows)
