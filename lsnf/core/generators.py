"""Top-down generators g_b: z -> x (docs/method.md §4).

The architectures are those of the latent-EBM-prior paper (Pang et al. 2020): transposed
convolutions, LeakyReLU(0.2), no BatchNorm (except the MNIST one), Tanh output in [-1, 1],
Xavier-normal init. They are picked by name from :data:`GENERATORS`; sizes (d, ngf, channels)
come from config so tests can build tiny ones. The four convolutional stacks are data
(:data:`CONV_STACKS`), built by one function. ``linear`` is an affine map ``x = zW + b``
(no Tanh), used where an analytic posterior is needed (tests, sanity checks).

Every transposed convolution is a :class:`ConvTranspose2d`: torch's layer (same parameters,
same checkpoints), except that where its kernel patches do not overlap (a 1x1 input, the first
layer of every conv stack; kernel = stride, the MNIST generator's layers) it runs as the single
matrix multiply it is (:func:`project_patches`, docs/method.md §4).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from lsnf.config import ModelConfig
from lsnf.core.architectures import CONV_STACKS, ConvLayer
from lsnf.errors import UserError

__all__ = [
    "CONV_STACKS",
    "GENERATORS",
    "ConvTranspose2d",
    "build_generator",
    "output_shape",
    "project_patches",
    "with_torch_layers",
]


def project_patches(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A transposed convolution (padding 0, dilation 1, one group) whose kernel patches do not
    overlap (kernel = stride, or a 1x1 input at any stride), as the one matrix multiply it is:
    each input pixel paints its own kH x kW patch,
    ``out[b, o, s·i + p, s·j + q] = sum_c x[b, c, i, j] W[c, o, p, q] + bias[o]``
    (docs/method.md §4, eq. 4.1).

    Equal to ``F.conv_transpose2d``, values and gradients, but runs as a GEMM
    (B·H·W, Cin) x (Cin, kH·kW·Cout) and one depth-to-space copy: 4-12x faster than oneDNN's
    transposed convolution at the conv stacks' 1x1 first layers on CPU (docs/results.md, "The
    benchmark"). The output has channels-last strides, so the next such layer reads its input
    without a copy, and the weight reshape is free when the weight is channels-last, as
    :func:`build_generator` stores it.
    """
    b, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    wm = weight.permute(0, 2, 3, 1).reshape(c_in, kh * kw * c_out)  # (Cin, kH*kW*Cout)
    xm = x.permute(0, 2, 3, 1).reshape(b * h * w, c_in)  # (B*H*W, Cin), free if channels-last
    if bias is None:
        y = xm @ wm  # (B*H*W, kH*kW*Cout)
    else:
        y = torch.addmm(bias.repeat(kh * kw), xm, wm)  # (B*H*W, kH*kW*Cout), Cout fastest
    y = y.view(b, h, w, kh, kw, c_out).permute(0, 1, 3, 2, 4, 5)  # (B, H, kH, W, kW, Cout)
    y = y.reshape(b, h * kh, w * kw, c_out)  # (B, H*kH, W*kW, Cout): a view when H = W = 1
    return y.permute(0, 3, 1, 2)  # (B, Cout, H*kH, W*kW) channels-last


class ConvTranspose2d(nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` (same parameters and state dict) that runs an input whose
    kernel patches do not overlap through :func:`project_patches`: a 1x1 input (the first
    layer of every conv stack), or kernel = stride (the MNIST generator's two layers). Every
    other input goes to torch's convolution."""

    def _projects(self, x: Tensor, output_size: list[int] | None) -> bool:
        return (
            x.dim() == 4
            and (x.shape[-2:] == (1, 1) or self.kernel_size == self.stride)
            and output_size is None
            and self.padding == (0, 0)
            and self.output_padding == (0, 0)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
        )

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self._projects(x, output_size):
            return project_patches(x, self.weight, self.bias)
        return super().forward(x, output_size)


def with_torch_layers(module: nn.Module) -> nn.Module:
    """``module`` with every :class:`ConvTranspose2d` turned back into torch's layer (same
    parameters and state, torch's forward), in place: the research code's form."""
    for m in module.modules():
        if isinstance(m, ConvTranspose2d):
            m.__class__ = nn.ConvTranspose2d
    return module


class _Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], *self.shape)


class ConvGenerator(nn.Module):
    """Wraps a conv stack: z (B, d) -> x (B, C, H, W)."""

    def __init__(self, latent_dim: int, body: nn.Sequential, flat_input: bool = False) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.flat_input = flat_input
        self.body = body

    def forward(self, z: Tensor) -> Tensor:
        if not self.flat_input:
            z = z.view(z.shape[0], self.latent_dim, 1, 1)  # (B, d, 1, 1)
        return self.body(z)  # (B, C, H, W)


def conv_stack(layers: tuple[ConvLayer, ...], cfg: ModelConfig) -> nn.Module:
    """A transposed-convolution generator from one of :data:`CONV_STACKS` (docs/method.md §4)."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    modules: list[nn.Module] = []
    c_in = d
    for i, (mult, k, s, p) in enumerate(layers):
        c_out = mult * f if mult else c
        last = i == len(layers) - 1
        modules += [ConvTranspose2d(c_in, c_out, k, s, p), nn.Tanh() if last else nn.LeakyReLU(0.2)]
        c_in = c_out
    return ConvGenerator(d, nn.Sequential(*modules))


def _mnist(cfg: ModelConfig) -> nn.Module:
    """MNIST 28x28 (anomaly detection): Linear(d->16ngf)+BN+ReLU -> Linear(->2ngf*7*7)+BN+ReLU
    -> ConvT(2ngf->ngf,2,s2)+BN+ReLU -> ConvT(ngf->C,2,s2), Tanh. ngf=64 gives the paper's
    1024 / 128 / 64 widths."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        nn.Linear(d, 16 * f),
        nn.BatchNorm1d(16 * f),
        nn.ReLU(),  # (B, 16f)
        nn.Linear(16 * f, 2 * f * 7 * 7),
        nn.BatchNorm1d(2 * f * 7 * 7),
        nn.ReLU(),  # (B, 98f)
        _Reshape(2 * f, 7, 7),  # (B, 2f, 7, 7)
        ConvTranspose2d(2 * f, f, 2, 2),
        nn.BatchNorm2d(f),
        nn.ReLU(),  # (B, f, 14, 14)
        ConvTranspose2d(f, c, 2, 2),
        nn.Tanh(),  # (B, C, 28, 28)
    )
    return ConvGenerator(d, body, flat_input=True)


def _linear(cfg: ModelConfig) -> nn.Module:
    """Affine generator ``x = zW + b`` reshaped to (C, S, S); no Tanh (analytic posteriors)."""
    d, c, s = cfg.latent_dim, cfg.channels, cfg.image_size
    body = nn.Sequential(nn.Linear(d, c * s * s), _Reshape(c, s, s))  # (B, C, S, S)
    return ConvGenerator(d, body, flat_input=True)


GENERATORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    **{name: partial(conv_stack, layers) for name, layers in CONV_STACKS.items()},
    "mnist": _mnist,
    "linear": _linear,
}


def _xavier_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def output_shape(generator: nn.Module, latent_dim: int) -> tuple[int, ...]:
    """(C, H, W) that ``generator`` produces, found by one forward pass of two latents."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        device = next(generator.parameters()).device
        shape = tuple(generator(torch.zeros(2, latent_dim, device=device)).shape[1:])
    generator.train(was_training)
    return shape


def build_generator(cfg: ModelConfig) -> nn.Module:
    """Build the generator named ``cfg.generator`` and check it emits ``cfg``'s image shape."""
    try:
        factory = GENERATORS[cfg.generator]
    except KeyError:
        raise UserError(
            f"unknown generator {cfg.generator!r}; choose one of {sorted(GENERATORS)} "
            f"(model.generator)"
        ) from None
    generator = factory(cfg)
    _xavier_init(generator)
    # NHWC weights: oneDNN's transposed convolutions run 9-16% faster per Langevin step on
    # CPU at the paper's shapes (lsnf bench), and cuDNN prefers them too.
    generator = generator.to(memory_format=torch.channels_last)
    produced = output_shape(generator, cfg.latent_dim)
    expected = (cfg.channels, cfg.image_size, cfg.image_size)
    if produced != expected:
        raise UserError(
            f"generator {cfg.generator!r} produces images of shape {produced} but the config "
            f"asks for {expected} (model.channels, model.image_size); pick the generator built "
            f"for that size or fix model.image_size"
        )
    return generator
