"""The generators' transposed convolution (docs/method.md §4): the 1x1 projection is the same
function as torch's layer, values and every gradient, and keeps torch's parameters; the
benchmark's research copy runs torch's layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsnf.core.generators import (
    CONV_STACKS,
    ConvTranspose2d,
    build_generator,
    project_patches,
    with_torch_layers,
)

FORMATS = [torch.channels_last, torch.contiguous_format]


@pytest.mark.parametrize("memory_format", FORMATS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    ("kernel", "stride", "size"),
    [
        (4, 1, (1, 1)),
        (8, 1, (1, 1)),
        (4, 2, (1, 1)),
        (3, 1, (1, 1)),
        (2, 2, (7, 7)),
        (3, 3, (2, 5)),
    ],
)
def test_projection_of_non_overlapping_patches_equals_torchs_transposed_convolution(
    memory_format, bias, kernel, stride, size
) -> None:
    """A 1x1 input at any stride, or kernel = stride at any input size: values and the
    gradients of input, weight and bias, in float64, against F.conv_transpose2d; the output
    keeps channels-last strides for the next layer."""
    g = torch.Generator().manual_seed(0)
    layer = ConvTranspose2d(7, 5, kernel, stride, 0, bias=bias).double()
    layer = layer.to(memory_format=memory_format)
    x = torch.randn(3, 7, *size, generator=g, dtype=torch.float64)
    x = x.to(memory_format=memory_format).requires_grad_(True)
    assert layer._projects(x, None)
    out_size = [(n - 1) * stride + kernel for n in size]
    upstream = torch.randn(3, 5, *out_size, generator=g, dtype=torch.float64)

    ours = layer(x)  # (3, 5, H', W')
    grads = torch.autograd.grad((ours * upstream).sum(), [x, *layer.parameters()])
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, stride, 0)
    ref_grads = torch.autograd.grad((ref * upstream).sum(), [x, *layer.parameters()])

    assert ours.shape == ref.shape == (3, 5, *out_size)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert len(grads) == (3 if bias else 2)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_other_inputs_go_to_torchs_convolution_unchanged() -> None:
    """Overlapping patches (a 2x2 input with kernel 4, stride 2), or padding, is torch's own
    forward, to the bit."""
    g = torch.Generator().manual_seed(1)
    for layer, size in (
        (ConvTranspose2d(4, 3, 4, 2, 1), 2),
        (ConvTranspose2d(4, 3, 4, 1, 1), 1),
        (ConvTranspose2d(4, 3, 4, 2, 1), 1),
        (ConvTranspose2d(4, 3, 4, 2, 0), 2),
        (ConvTranspose2d(4, 3, 2, 2, 1), 3),
    ):
        x = torch.randn(2, 4, size, size, generator=g)
        assert not layer._projects(x, None)
        assert torch.equal(layer(x), nn.ConvTranspose2d.forward(layer, x))


def test_projection_under_bf16_autocast_matches_torch_within_bf16_rounding() -> None:
    g = torch.Generator().manual_seed(2)
    layer = ConvTranspose2d(100, 64, 4, 1, 0)
    nn.init.normal_(layer.bias, generator=g)
    z = torch.randn(8, 100, 1, 1, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = layer(z)
        ref = nn.ConvTranspose2d.forward(layer, z)
    assert ours.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=2e-2)
    exact = layer(z).detach()  # fp32
    assert (ours.float() - exact).abs().max() < 0.05 * exact.abs().max()


@pytest.mark.parametrize("name", sorted(CONV_STACKS))
def test_conv_generators_keep_torchs_parameters_and_project_their_first_layer(
    make_config, name
) -> None:
    """Checkpoints of torch's layers load unchanged (same state-dict keys and shapes), and the
    first layer of every conv stack takes the projection (the 1x1 latent)."""
    cfg = make_config(
        model={
            "generator": name,
            "latent_dim": 8,
            "ngf": 2,
            "channels": 3,
            "image_size": 256 if name == "celebahq256" else 64 if name == "celeba64" else 32,
        }
    )
    ours = build_generator(cfg.model)
    plain = with_torch_layers(build_generator(cfg.model))
    keys = {k: v.shape for k, v in ours.state_dict().items()}
    assert keys == {k: v.shape for k, v in plain.state_dict().items()}
    plain.load_state_dict(ours.state_dict())
    first = ours.body[0]
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(3))
    assert isinstance(first, ConvTranspose2d) and first._projects(z.view(3, 8, 1, 1), None)
    with torch.no_grad():
        torch.testing.assert_close(ours(z), plain(z), rtol=1e-5, atol=1e-6)


def test_project_patches_paints_one_patch_per_input_pixel() -> None:
    """out[b, o, s·i + p, s·j + q] = sum_c x[b, c, i, j] W[c, o, p, q] + bias[o] (kernel =
    stride = (2, 4)), written out with einsum; a 1x1 input is (4.1) itself."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 6, 3, 2, generator=g, dtype=torch.float64)
    w = torch.randn(6, 3, 2, 4, generator=g, dtype=torch.float64)  # (Cin, Cout, kH, kW)
    b = torch.randn(3, generator=g, dtype=torch.float64)
    patches = torch.einsum("bcij,copq->boipjq", x, w)  # (B, Cout, H, kH, W, kW)
    want = patches.reshape(5, 3, 6, 8) + b.view(1, 3, 1, 1)
    torch.testing.assert_close(project_patches(x, w, b), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(project_patches(x, w, None), want - b.view(1, 3, 1, 1))
    one = x[:, :, :1, :1]  # (B, Cin, 1, 1)
    want_1x1 = torch.einsum("bc,coij->boij", one.flatten(1), w) + b.view(1, 3, 1, 1)
    torch.testing.assert_close(project_patches(one, w, b), want_1x1, rtol=1e-12, atol=1e-12)


def test_mnist_generator_projects_both_transposed_convolutions(make_config) -> None:
    """Kernel 2, stride 2: both layers take the projection, and the generator equals its
    torch-layer form (the checkpoint loads unchanged), values and input gradients."""
    model = {"generator": "mnist", "latent_dim": 8, "ngf": 4, "channels": 1, "image_size": 28}
    cfg = make_config(model=model)
    ours = build_generator(cfg.model).double()
    plain = with_torch_layers(build_generator(cfg.model)).double()
    plain.load_state_dict(ours.state_dict())
    convs = [m for m in ours.modules() if isinstance(m, ConvTranspose2d)]
    assert len(convs) == 2 and all(m.kernel_size == m.stride == (2, 2) for m in convs)
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for model in (ours, plain):
        model.eval()
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    a, b = ours(za), plain(zb)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    (ga,) = torch.autograd.grad(a.pow(2).sum(), za)
    (gb,) = torch.autograd.grad(b.pow(2).sum(), zb)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def test_benchmark_research_copy_runs_torchs_layers_in_nchw(make_config) -> None:
    from lsnf.bench import research_copy
    from lsnf.core.model import build_model

    cfg = make_config(
        model={"generator": "svhn", "latent_dim": 8, "ngf": 2, "channels": 3, "image_size": 32}
    )
    model = build_model(cfg)
    research = research_copy(model)
    layers = [m for m in research.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert layers and all(type(m) is nn.ConvTranspose2d for m in layers)
    assert all(m.weight.is_contiguous() for m in layers)
    assert any(type(m) is ConvTranspose2d for m in model.modules())  # the original is untouched
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(research.decode(z), model.decode(z), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_benchmark_runs_and_reports_every_figure(capsys) -> None:
    """A smoke run at a tiny batch: every figure is there and finite, the layers-only time is
    a part of the work (no timing target: figures belong to the printed benchmark)."""
    from lsnf.bench import run_bench

    rows = run_bench(["mnist"], batch_size=4, blocks=1, steps_per_block=1)
    out = capsys.readouterr().out
    assert "machine:" in out and "ops/step" in out and "layers %" in out
    assert out.count("\nmnist ") == 3  # its ops/step row, then its fp32 and bf16 rows
    assert [r["precision"] for r in rows] == ["fp32", "bf16"] and rows[0]["speedup"] == 1.0
    for row in rows:
        for key in (
            "step_s",
            "naive_step_s",
            "iter_s",
            "flops",
            "gemm",
            "ceiling",
            "layers_s",
            "layers_flops",
            "layer_ceiling",
            "speedup",
        ):
            assert 0 < row[key] < float("inf"), key
        assert row["ceiling"] == max(row["gemm"], row["layer_ceiling"])
        assert 0 < row["layers_flops"] < row["flops"]  # the step also runs the flow prior
    assert rows[0]["flops"] == rows[1]["flops"]  # the same work in either precision


def test_benchmark_timing_synchronises_around_every_timed_call() -> None:
    """On CUDA the kernels run after the call returns: lsnf bench waits for them (sync) before
    each clock read, and never inside the burn-in."""
    from lsnf.bench import device_sync, interleaved_min

    calls: list[str] = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b")]
    interleaved_min(fns, blocks=2, burn_in=True, sync=lambda: calls.append("|"))
    assert calls == ["a", "b"] + ["|", "a", "|", "|", "b", "|"] * 2
    assert device_sync(torch.device("cpu")) is None
