"""Glow-style normalizing flow on latent vectors (docs/method.md §2).

The flow maps a latent ``z`` to a base variable ``eps = F(z)``, ``eps ~ N(0, I)``:

    log p_a(z) = log N(F(z); 0, I) + log |det dF/dz|,
    log N(eps; 0, I) = -||eps||^2 / 2 - (d / 2) log(2 pi).

(The authors' code adds ``+ log 2 pi`` instead of ``-(d/2) log 2 pi``; we use the correct
constant, docs/protocols.md §7.) Each step is ActNorm -> invertible linear map -> affine
coupling, in the direction ``z -> eps``. Written by hand: no library ships these blocks for
vectors with the exact parameterisation of the paper.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lsnf.errors import UserError

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FlowStep",
    "GlowVectorFlow",
    "InvertibleLinear",
    "standard_normal_log_prob",
]

_LOGSCALE_FACTOR = 3.0  # Glow's "logscale_factor": scale = exp(3 * logs)
_LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` per row, with the correct constant ``-(d/2) log 2 pi``
    (docs/method.md §2.4): the flow's base density and the Gaussian prior (§3.1)."""
    return -0.5 * z.pow(2).sum(dim=1) - 0.5 * z.shape[1] * _LOG_2PI  # (B,)


class ActNorm(nn.Module):
    """Per-dimension affine map ``y = (x + b) * exp(3 * logs)`` (docs/method.md §2.1).

    ``b`` and ``logs`` start from N(0, 0.05^2), with no data-dependent initialisation.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim) * 0.05)  # (d,)
        self.logs = nn.Parameter(torch.randn(dim) * 0.05)  # (d,)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(y, logdet)``; logdet is a scalar shared by every row."""
        y = (x + self.bias) * torch.exp(_LOGSCALE_FACTOR * self.logs)  # (B, d)
        return y, _LOGSCALE_FACTOR * self.logs.sum()

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-_LOGSCALE_FACTOR * self.logs) - self.bias  # (B, d)


class InvertibleLinear(nn.Module):
    """``y = x W`` with ``W`` (d x d) initialised random orthogonal (docs/method.md §2.2).

    ``log |det W|`` is computed in float64 for accuracy.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(dim, dim))  # random orthogonal (d, d)
        self.weight = nn.Parameter(q)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.linalg.slogdet(self.weight.double())[1].to(x.dtype)
        return x @ self.weight, logdet  # (B, d), ()

    def inverse(self, y: Tensor) -> Tensor:
        w_inv = torch.linalg.inv(self.weight.double()).to(y.dtype)  # (d, d)
        return y @ w_inv  # (B, d)


class _LinearActNorm(nn.Module):
    """Linear layer followed by ActNorm (no log-determinant needed inside the coupling NN)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.actnorm = ActNorm(n_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.actnorm(self.linear(x))[0]


class _LinearZeros(nn.Module):
    """Zero-initialised linear layer with output scale ``exp(3 * logs)`` (Glow's LinearZeros)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.logs = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) * torch.exp(_LOGSCALE_FACTOR * self.logs)


class AffineCoupling(nn.Module):
    """Affine coupling (docs/method.md §2.3).

    ``z = [z1, z2]``; ``h = NN(z1)``; ``shift = h[:, 0::2]``; ``scale = sigmoid(h[:, 1::2] + 2)``;
    ``z2 <- (z2 + shift) * scale``; ``logdet = sum log scale``.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        if dim % 2 != 0:
            raise UserError(
                f"the flow prior's affine coupling splits z in two halves, so the latent "
                f"dimension must be even; got d={dim}. Set model.latent_dim to an even number."
            )
        half = dim // 2
        self.net = nn.Sequential(
            _LinearActNorm(half, hidden),
            nn.ReLU(),
            _LinearActNorm(hidden, hidden),
            nn.ReLU(),
            _LinearZeros(hidden, dim),
        )

    def _shift_scale(self, z1: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(z1)  # (B, d)
        return h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0)  # (B, d/2), (B, d/2)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z1, z2 = z.chunk(2, dim=1)  # (B, d/2) each
        shift, scale = self._shift_scale(z1)
        y2 = (z2 + shift) * scale  # (B, d/2)
        return torch.cat([z1, y2], dim=1), torch.log(scale).sum(dim=1)  # (B, d), (B,)

    def inverse(self, y: Tensor) -> Tensor:
        z1, y2 = y.chunk(2, dim=1)  # (B, d/2) each
        shift, scale = self._shift_scale(z1)
        return torch.cat([z1, y2 / scale - shift], dim=1)  # (B, d)


class FlowStep(nn.Module):
    """One Glow step on vectors: ActNorm -> invertible linear -> affine coupling."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.actnorm = ActNorm(dim)
        self.linear = InvertibleLinear(dim)
        self.coupling = AffineCoupling(dim, hidden)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z, ld_a = self.actnorm(z)
        z, ld_w = self.linear(z)
        z, ld_c = self.coupling(z)
        return z, ld_a + ld_w + ld_c  # (B, d), (B,)

    def inverse(self, eps: Tensor) -> Tensor:
        return self.actnorm.inverse(self.linear.inverse(self.coupling.inverse(eps)))


class GlowVectorFlow(nn.Module):
    """The flow F: z -> eps of docs/method.md §2: one level of ``depth`` steps."""

    def __init__(self, dim: int, depth: int = 5, hidden: int = 64) -> None:
        super().__init__()
        if dim < 2 or dim % 2 != 0:
            raise UserError(
                f"the flow prior needs an even latent dimension >= 2 (the coupling splits z in "
                f"halves); got d={dim}. Set model.latent_dim to an even number."
            )
        if depth < 1:
            raise UserError(f"flow depth must be >= 1, got {depth}")
        self.dim = dim
        self.steps = nn.ModuleList(FlowStep(dim, hidden) for _ in range(depth))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(eps, log|det dF/dz|)`` with shapes (B, d) and (B,)."""
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)  # (B,)
        for step in self.steps:
            z, ld = step(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, eps: Tensor) -> Tensor:
        """``z = F^{-1}(eps)`` (ancestral sampling, docs/method.md §2.5)."""
        for step in reversed(self.steps):
            eps = step.inverse(eps)
        return eps  # (B, d)

    def log_prob(self, z: Tensor) -> Tensor:
        """``log p_a(z) = log N(F(z); 0, I) + log|det dF/dz|`` (docs/method.md §2.4)."""
        eps, logdet = self(z)  # (B, d), (B,)
        return standard_normal_log_prob(eps) + logdet  # (B,)
