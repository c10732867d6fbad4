"""Langevin dynamics as importable pure functions (docs/method.md §5 and §3.2).

One sampler serves three uses:
- short-run posterior inference for learning (noise on, K steps, docs/method.md §5.1),
- test-time inference (noise off, K_test steps): the same function with other arguments (§5.3),
- the latent EBM's prior sampler (§3.2).

Update (docs/method.md eq. 5.1): ``z_{k+1} = z_k - (s^2 / 2) grad_z U(z_k) + s * N(0, I)``.
Energies are summed over the batch before the gradient, so each example's gradient is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lsnf.core.noise import RandomSource, standard_normal

__all__ = [
    "LangevinTrace",
    "frozen",
    "langevin",
    "masked_sq_error",
    "posterior_energy",
]

EnergyFn = Callable[[Tensor], Tensor]  # z (B, d) -> energy (B,)


@dataclass
class LangevinTrace:
    """Diagnostics of one Langevin run: mean energy before each step (``record``) and the final
    gradient norm, kept on the device until asked for (no host sync in the loop)."""

    energies: list[float] = field(default_factory=list)
    last_grad_norm: Tensor | None = None  # () on the latents' device

    @property
    def grad_norm(self) -> float:
        return float("nan") if self.last_grad_norm is None else float(self.last_grad_norm)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Temporarily stop parameters from requiring gradients.

    Langevin needs gradients with respect to z only; with parameters frozen, autograd does not
    record or compute anything for them, which keeps each step as cheap as one forward and one
    input-gradient pass.
    """
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def langevin(
    z0: Tensor,
    energy_fn: EnergyFn,
    n_steps: int,
    step_size: float,
    noise: bool,
    generator: RandomSource = None,
    record: bool = False,
) -> tuple[Tensor, LangevinTrace]:
    """Run ``n_steps`` of (noisy or noise-free) Langevin dynamics on ``energy_fn`` from ``z0``.

    Implements ``z <- z - (s^2/2) grad U(z) + s * eps`` (docs/method.md eq. 5.1, the short-run
    Langevin flow); with ``noise=False`` it is gradient descent with step ``s^2/2``.

    Args:
        z0: initial latents, (B, d). Not modified.
        energy_fn: maps z (B, d) to per-example energies (B,).
        n_steps: number of steps K.
        step_size: s.
        noise: add ``s * N(0, I)`` each step.
        generator: source of the noise (explicit, for reproducibility): a batch's
            ``torch.Generator``, or each example's stream (``lsnf.core.noise.ExampleNoise``).
        record: keep the mean energy of every step (costs one host sync per step).

    Returns:
        ``(z_K, trace)``; z_K is detached.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    trace = LangevinTrace()
    z = z0.detach()
    half_s2 = 0.5 * step_size * step_size
    grad = ones = None
    for _ in range(n_steps):
        z = z.requires_grad_(True)
        energy = energy_fn(z)  # (B,)
        if ones is None:
            ones = torch.ones_like(energy)  # (B,): d(sum of energies)/d(energy), made once
        (grad,) = torch.autograd.grad(energy, z, ones)  # (B, d)
        if record:
            trace.energies.append(float(energy.detach().mean()))
        z = torch.add(z.detach(), grad, alpha=-half_s2)  # (B, d)
        if noise:
            xi = standard_normal(z.shape, generator, z.device, z.dtype)  # (B, d)
            z = torch.add(z, xi, alpha=step_size)  # (B, d)
    if grad is not None:
        trace.last_grad_norm = grad.norm(dim=1).mean().detach()  # ()
    return z.detach(), trace


def posterior_energy(
    z: Tensor,
    x: Tensor,
    decode: Callable[[Tensor], Tensor],
    prior_energy: Callable[[Tensor], Tensor],
    sigma: float,
    mask: Tensor | None = None,
) -> Tensor:
    """``U(z) = ||m * (x - g(z))||^2 / (2 sigma^2) - log p(z)`` per example (docs/method.md
    eq. 5.2).

    Args:
        z: latents (B, d).
        x: images (B, C, H, W) in [-1, 1].
        decode: the generator g.
        prior_energy: -log p(z), per example (B,).
        sigma: observation noise standard deviation.
        mask: optional pixel mask broadcastable to x (1 = observed, 0 = hidden); hidden pixels
            contribute nothing (inpainting and recovery, docs/method.md §7.4).

    Returns:
        energies (B,).
    """
    sq_error = masked_sq_error(x, decode(z), mask)  # (B,)
    return torch.add(prior_energy(z), sq_error, alpha=0.5 / (sigma * sigma))  # (B,)


def masked_sq_error(x: Tensor, x_hat: Tensor, mask: Tensor | None = None) -> Tensor:
    """``||m * (x - x_hat)||^2`` per example (B,); with ``where``, not a product, so hidden
    values (even NaN) never leak in."""
    residual = x - x_hat  # (B, C, H, W)
    if mask is not None:
        residual = torch.where(mask.bool(), residual, residual.new_zeros(()))
    return residual.pow(2).flatten(1).sum(dim=1)  # (B,)
