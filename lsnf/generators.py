"""Top-down generators g_b: z -> x (PAPER.md §1, "Generators").

The architectures are those of the latent-EBM-prior paper (Pang et al. 2020): transposed
convolutions, LeakyReLU(0.2), no BatchNorm (except the MNIST one), Tanh output in [-1, 1],
Xavier-normal init. They are picked by name from :data:`GENERATORS`; sizes (d, ngf, channels)
come from config so tests can build tiny ones. ``linear`` is an affine map ``x = zW + b``
(no Tanh), used where an analytic posterior is needed (tests, sanity checks).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lsnf.config import ModelConfig

__all__ = ["GENERATORS", "build_generator", "output_shape"]


def _convt(c_in: int, c_out: int, k: int, s: int, p: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, k, s, p)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


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


def _svhn(cfg: ModelConfig) -> nn.Module:
    """SVHN 32x32: ConvT(d->8ngf,4,1,0):4 -> 4ngf:8 -> 2ngf:16 -> C:32, Tanh."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        _convt(d, 8 * f, 4, 1, 0), _lrelu(),  # (B, 8f, 4, 4)
        _convt(8 * f, 4 * f, 4, 2, 1), _lrelu(),  # (B, 4f, 8, 8)
        _convt(4 * f, 2 * f, 4, 2, 1), _lrelu(),  # (B, 2f, 16, 16)
        _convt(2 * f, c, 4, 2, 1), nn.Tanh(),  # (B, C, 32, 32)
    )  # fmt: skip
    return ConvGenerator(d, body)


def _cifar10(cfg: ModelConfig) -> nn.Module:
    """CIFAR-10 32x32: ConvT(d->8ngf,8,1,0):8 -> 4ngf:16 -> 2ngf:32 -> (3,1,1) C:32, Tanh."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        _convt(d, 8 * f, 8, 1, 0), _lrelu(),  # (B, 8f, 8, 8)
        _convt(8 * f, 4 * f, 4, 2, 1), _lrelu(),  # (B, 4f, 16, 16)
        _convt(4 * f, 2 * f, 4, 2, 1), _lrelu(),  # (B, 2f, 32, 32)
        _convt(2 * f, c, 3, 1, 1), nn.Tanh(),  # (B, C, 32, 32)
    )  # fmt: skip
    return ConvGenerator(d, body)


def _celeba64(cfg: ModelConfig) -> nn.Module:
    """CelebA 64x64: ConvT(d->8ngf,4,1,0):4 -> 4ngf:8 -> 2ngf:16 -> ngf:32 -> C:64, Tanh."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        _convt(d, 8 * f, 4, 1, 0), _lrelu(),  # (B, 8f, 4, 4)
        _convt(8 * f, 4 * f, 4, 2, 1), _lrelu(),  # (B, 4f, 8, 8)
        _convt(4 * f, 2 * f, 4, 2, 1), _lrelu(),  # (B, 2f, 16, 16)
        _convt(2 * f, f, 4, 2, 1), _lrelu(),  # (B, f, 32, 32)
        _convt(f, c, 4, 2, 1), nn.Tanh(),  # (B, C, 64, 64)
    )  # fmt: skip
    return ConvGenerator(d, body)


def _celebahq256(cfg: ModelConfig) -> nn.Module:
    """CelebA-HQ 256x256: ConvT(d->16ngf,4,1,0):4 -> 8ngf:8 -> 4ngf:16 -> 2ngf:32 -> ngf:64
    -> ngf:128 -> C:256, Tanh."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        _convt(d, 16 * f, 4, 1, 0), _lrelu(),  # (B, 16f, 4, 4)
        _convt(16 * f, 8 * f, 4, 2, 1), _lrelu(),  # (B, 8f, 8, 8)
        _convt(8 * f, 4 * f, 4, 2, 1), _lrelu(),  # (B, 4f, 16, 16)
        _convt(4 * f, 2 * f, 4, 2, 1), _lrelu(),  # (B, 2f, 32, 32)
        _convt(2 * f, f, 4, 2, 1), _lrelu(),  # (B, f, 64, 64)
        _convt(f, f, 4, 2, 1), _lrelu(),  # (B, f, 128, 128)
        _convt(f, c, 4, 2, 1), nn.Tanh(),  # (B, C, 256, 256)
    )  # fmt: skip
    return ConvGenerator(d, body)


def _mnist(cfg: ModelConfig) -> nn.Module:
    """MNIST 28x28 (anomaly detection): Linear(d->16ngf)+BN+ReLU -> Linear(->2ngf*7*7)+BN+ReLU
    -> ConvT(2ngf->ngf,2,s2)+BN+ReLU -> ConvT(ngf->C,2,s2), Tanh. ngf=64 gives the paper's
    1024 / 128 / 64 widths."""
    d, f, c = cfg.latent_dim, cfg.ngf, cfg.channels
    body = nn.Sequential(
        nn.Linear(d, 16 * f), nn.BatchNorm1d(16 * f), nn.ReLU(),  # (B, 16f)
        nn.Linear(16 * f, 2 * f * 7 * 7), nn.BatchNorm1d(2 * f * 7 * 7), nn.ReLU(),  # (B, 98f)
        _Reshape(2 * f, 7, 7),  # (B, 2f, 7, 7)
        nn.ConvTranspose2d(2 * f, f, 2, 2), nn.BatchNorm2d(f), nn.ReLU(),  # (B, f, 14, 14)
        nn.ConvTranspose2d(f, c, 2, 2), nn.Tanh(),  # (B, C, 28, 28)
    )  # fmt: skip
    return ConvGenerator(d, body, flat_input=True)


def _linear(cfg: ModelConfig) -> nn.Module:
    """Affine generator ``x = zW + b`` reshaped to (C, S, S); no Tanh (analytic posteriors)."""
    d, c, s = cfg.latent_dim, cfg.channels, cfg.image_size
    body = nn.Sequential(nn.Linear(d, c * s * s), _Reshape(c, s, s))  # (B, C, S, S)
    return ConvGenerator(d, body, flat_input=True)


GENERATORS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "svhn": _svhn,
    "cifar10": _cifar10,
    "celeba64": _celeba64,
    "celebahq256": _celebahq256,
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
        raise ValueError(
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
        raise ValueError(
            f"generator {cfg.generator!r} produces images of shape {produced} but the config "
            f"asks for {expected} (model.channels, model.image_size); pick the generator built "
            f"for that size or fix model.image_size"
        )
    return generator
