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
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lsnf.errors import UserError

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "FlowStep",
    "FoldedFlow",
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


@dataclass(frozen=True)
class _FoldedStep:
    """One flow step with its parameters folded into three affine maps (docs/method.md §2.6):

    - ``w_in``, ``b_in``: ActNorm -> linear map -> (first half) the coupling's first Linear +
      ActNorm, so one ``addmm`` gives ``[u1 | u2 | pre1]``;
    - ``w_mid``, ``b_mid``: the coupling's second Linear + ActNorm;
    - ``w_out``, ``b_out``: the zero-initialised last layer with its scale, columns reordered to
      ``[shift | scale logit]`` and the ``+2`` of the scale folded into the bias.
    """

    w_in: Tensor  # (d, d + w)
    b_in: Tensor  # (d + w,)
    w_mid: Tensor  # (w, w)
    b_mid: Tensor  # (w,)
    w_out: Tensor  # (w, d)
    b_out: Tensor  # (d,)


def _linear_actnorm(layer: _LinearActNorm) -> tuple[Tensor, Tensor]:
    """``(x W^T + c + b) * s`` as ``x A + a``: (n_in, n_out), (n_out,)."""
    s = torch.exp(_LOGSCALE_FACTOR * layer.actnorm.logs)  # (n_out,)
    return layer.linear.weight.T * s, (layer.linear.bias + layer.actnorm.bias) * s


def _fold_step(step: FlowStep) -> _FoldedStep:
    first, _, mid, _, last = step.coupling.net
    s_a = torch.exp(_LOGSCALE_FACTOR * step.actnorm.logs)  # (d,)
    w_lin = s_a[:, None] * step.linear.weight  # (d, d): ActNorm then the linear map
    c_lin = (step.actnorm.bias * s_a) @ step.linear.weight  # (d,)
    half = w_lin.shape[0] // 2
    a1, c1 = _linear_actnorm(first)  # (d/2, w), (w,)
    a2, c2 = _linear_actnorm(mid)  # (w, w), (w,)
    s_o = torch.exp(_LOGSCALE_FACTOR * last.logs)  # (d,)
    a3, c3 = last.linear.weight.T * s_o, last.linear.bias * s_o  # (w, d), (d,)
    return _FoldedStep(
        w_in=torch.cat([w_lin, w_lin[:, :half] @ a1], dim=1),
        b_in=torch.cat([c_lin, c_lin[:half] @ a1 + c1]),
        w_mid=a2,
        b_mid=c2,
        w_out=torch.cat([a3[:, 0::2], a3[:, 1::2]], dim=1),
        b_out=torch.cat([c3[0::2], c3[1::2] + 2.0]),
    )


class FoldedFlow:
    """``-log p_a(z)`` of a flow whose parameters are frozen, with its z-gradient written out
    (docs/method.md §2.6): the prior's term of the posterior energy (5.2) in Langevin steps.

    Folding (ActNorms into the maps around them, the log-determinants of ActNorm and of the
    linear maps into one constant) happens once, at construction: once per learning iteration
    or evaluation batch, not once per Langevin step. It keeps no reference to the flow's
    parameters: rebuild it after they change. The value and the gradient with respect to z
    equal ``-GlowVectorFlow.log_prob``'s up to round-off; no gradient reaches the parameters,
    so use it only where they are frozen (``lsnf.core.langevin.frozen``).
    """

    def __init__(self, flow: GlowVectorFlow) -> None:
        device = flow.steps[0].actnorm.logs.device
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            self.steps = tuple(_fold_step(step) for step in flow.steps)
            logdet = sum(
                _LOGSCALE_FACTOR * step.actnorm.logs.double().sum()
                + torch.linalg.slogdet(step.linear.weight.double())[1]
                for step in flow.steps
            )
            dtype = flow.steps[0].actnorm.logs.dtype
            self.constant = (logdet - 0.5 * flow.dim * _LOG_2PI).to(dtype)  # ()
        self.dim = flow.dim
        self.hidden = self.steps[0].w_mid.shape[0]

    def neg_log_prob(self, z: Tensor) -> Tensor:
        """``-log p_a(z)`` (B,) for z (B, d), differentiable with respect to z only. Runs in the
        flow's dtype even under autocast, like the unfolded prior (docs/method.md §5.4)."""
        with torch.autocast(z.device.type, enabled=False):
            return _FoldedNegLogProb.apply(z, self)  # type: ignore[no-any-return]


class _FoldedNegLogProb(torch.autograd.Function):
    """Forward and z-gradient of ``-log p_a(z)`` (2.4) through the folded steps (docs/method.md
    §2.6), in as few tensor operations as the arithmetic allows: 8 per step forward, 10 back.

    Per step, forward: ``p = y W_in + b_in = [u1 | u2 | pre1]``, ``a1 = relu(pre1)``,
    ``a2 = relu(a1 W_mid + b_mid)``, ``[shift | t] = a2 W_out + b_out``, ``sc = sigmoid(t)``,
    ``v = u2 + shift``, ``y' = [u1 | v * sc]``, log-det ``sum log sc``. Backward, from the
    output gradient ``g = [g1 | g2]`` and the gradient ``go`` of the result (per row):
    ``g_v = g2 * sc``, ``g_t = (g_v * v - go) * (1 - sc)``, back through the two ReLU layers
    to ``g_pre1``, then ``g_y = [g1 | g_v | g_pre1] W_in^T``.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, folded: FoldedFlow) -> Tensor:
        n, d = z.shape
        half, depth = d // 2, len(folded.steps)
        buffer = z.new_empty(depth, n, d + half)  # per step: [shift | t | sc]
        heads, scales = buffer[..., :d], buffer[..., d:]  # (depth, B, d), (depth, B, d/2)
        saved: list[tuple[Tensor, Tensor, Tensor]] = []
        y = z
        for i, st in enumerate(folded.steps):  # the prior stays in its dtype (§5.4)
            p = torch.addmm(st.b_in, y, st.w_in)  # (B, d + w): [u1 | u2 | pre1]
            u2, pre1 = p[:, half:d], p[:, d:]  # (B, d/2), (B, w)
            a1 = torch.relu(pre1)  # (B, w)
            a2 = torch.relu(torch.addmm(st.b_mid, a1, st.w_mid))  # (B, w)
            torch.addmm(st.b_out, a2, st.w_out, out=heads[i])  # (B, d): [shift | t]
            torch.sigmoid(heads[i, :, half:], out=scales[i])  # (B, d/2)
            v = u2 + heads[i, :, :half]  # (B, d/2)
            torch.mul(v, scales[i], out=u2)  # y2 = v * sc, written where u2 was
            y = p[:, :d]  # (B, d): [u1 | y2], a view
            saved.append((a1, a2, v))
        logdet = torch.nn.functional.logsigmoid(heads[..., half:]).sum(dim=(0, 2))  # (B,)
        # ||eps||^2 / 2 - logdet as one batched dot product, then the constant
        out = torch.baddbmm(logdet[:, None, None], y[:, None, :], y[:, :, None], beta=-1, alpha=0.5)
        ctx.folded, ctx.saved = folded, saved
        ctx.save_for_backward(y, scales)
        return out.view(n) - folded.constant  # (B,)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor, None]:
        eps, scales = ctx.saved_tensors  # (B, d), (depth, B, d/2)
        folded: FoldedFlow = ctx.folded
        half = folded.dim // 2
        go = g_out[:, None]  # (B, 1)
        sc_minus_one = scales - 1.0  # (depth, B, d/2)
        g = eps * go  # (B, d): gradient of ||eps||^2 / 2
        for i in reversed(range(len(folded.steps))):
            st, (a1, a2, v) = folded.steps[i], ctx.saved[i]
            g_v = g[:, half:] * scales[i]  # (B, d/2): also the gradient of u2 and of shift
            g_t = torch.addcmul(go, g_v, v, value=-1) * sc_minus_one[i]  # (B, d/2)
            g_a2 = torch.cat([g_v, g_t], dim=1) @ st.w_out.T  # (B, w)
            g_a1 = torch.ops.aten.threshold_backward(g_a2, a2, 0) @ st.w_mid.T  # (B, w)
            g_pre1 = torch.ops.aten.threshold_backward(g_a1, a1, 0)  # (B, w)
            g = torch.cat([g[:, :half], g_v, g_pre1], dim=1) @ st.w_in.T  # (B, d)
        return g, None
