"""Latent priors behind one interface (docs/method.md §2 and §3).

Every prior offers:
- ``log_prob(z)``: log-density (B,) — exact for ``flow`` and ``gaussian``; for ``ebm`` the
  unnormalised ``-E(z) + log N(z; 0, I)`` (its normaliser is a constant in z);
- ``sample(n, generator)``: prior samples from an explicit source: a ``torch.Generator``, or
  each example's stream (``lsnf.core.noise.ExampleNoise``);
- ``learning_loss(z_post, generator)``: the prior's own learning objective on detached
  posterior samples (``None`` for a prior without parameters);
- ``frozen_neg_log_prob()``: ``-log_prob`` for while the parameters are frozen (the Langevin
  steps of posterior inference), with whatever depends on the parameters alone computed once.

Priors are built by name from :data:`PRIORS`, so adding one never touches the trainer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lsnf.config import PRIOR_KINDS, PriorConfig
from lsnf.core.flow import FoldedFlow, GlowVectorFlow, standard_normal_log_prob
from lsnf.core.langevin import frozen, langevin
from lsnf.core.noise import RandomSource, standard_normal

__all__ = ["PRIORS", "EBMPrior", "FlowPrior", "GaussianPrior", "Prior", "build_prior"]


class Prior(nn.Module):
    """Interface of a latent prior p(z) on R^d."""

    dim: int

    def log_prob(self, z: Tensor) -> Tensor:  # (B, d) -> (B,)
        raise NotImplementedError

    def sample(self, n: int, generator: RandomSource = None) -> Tensor:  # (n, d)
        raise NotImplementedError

    def learning_loss(self, z_post: Tensor, generator: RandomSource) -> Tensor | None:
        """Loss whose gradient step is this prior's learning update (docs/method.md §6)."""
        raise NotImplementedError

    def neg_log_prob(self, z: Tensor) -> Tensor:  # (B, d) -> (B,)
        """``-log_prob(z)``: the prior's term of the posterior energy (docs/method.md eq. 5.2)."""
        return -self.log_prob(z)

    def frozen_neg_log_prob(self) -> Callable[[Tensor], Tensor]:
        """``neg_log_prob`` to call while the parameters stay as they are now and frozen; valid
        until they change (docs/method.md §2.6). By default ``neg_log_prob`` itself."""
        return self.neg_log_prob

    def _randn(self, n: int, generator: RandomSource) -> Tensor:
        """``N(0, I)`` draws (n, d) on this prior's device and in its dtype (the anchor buffer
        follows ``.to()``, ``.double()`` and ``.cuda()``)."""
        anchor = self._device_anchor
        return standard_normal((n, self.dim), generator, anchor.device, anchor.dtype)


class FlowPrior(Prior):
    """LFBM's prior: the Glow-style vector flow (docs/method.md §2), learned by exact MLE (§6)."""

    def __init__(self, dim: int, depth: int, hidden: int) -> None:
        super().__init__()
        self.dim = dim
        self.flow = GlowVectorFlow(dim, depth=depth, hidden=hidden)
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.flow.log_prob(z)

    def frozen_neg_log_prob(self) -> Callable[[Tensor], Tensor]:
        """The folded flow's ``-log p_a``, its z-gradient written out (docs/method.md §2.6)."""
        return FoldedFlow(self.flow).neg_log_prob

    def sample(self, n: int, generator: RandomSource = None) -> Tensor:
        """Ancestral: ``eps ~ N(0, I)``, ``z = F^{-1}(eps)`` — no MCMC (docs/method.md §2.5)."""
        return self.flow.inverse(self._randn(n, generator))

    def learning_loss(self, z_post: Tensor, generator: RandomSource) -> Tensor:
        """``loss_F = -(1/m) sum_i log p_a(z_i^K)`` on detached posterior samples (§6)."""
        return -self.log_prob(z_post.detach()).mean()


class GaussianPrior(Prior):
    """N(0, I): the ABP baseline (Han et al. 2017; docs/method.md §3.1). Nothing to learn."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z: Tensor) -> Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int, generator: RandomSource = None) -> Tensor:
        return self._randn(n, generator)

    def learning_loss(self, z_post: Tensor, generator: RandomSource) -> None:
        return None


class EBMPrior(Prior):
    """Latent EBM prior ``p(z) ∝ exp(-E(z)) N(0, I)`` (Pang et al. 2020; docs/method.md §3.2).

    ``E`` is an MLP d -> h -> h -> 1 with GELU. Prior samples come from ``steps`` Langevin
    steps of size ``step_size`` started at N(0, I).
    """

    def __init__(self, dim: int, hidden: int, steps: int, step_size: float) -> None:
        super().__init__()
        self.dim = dim
        self.steps = steps
        self.step_size = step_size
        self.energy_net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 1),
        )
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)

    def energy(self, z: Tensor) -> Tensor:
        return self.energy_net(z).squeeze(1)  # (B,)

    def log_prob(self, z: Tensor) -> Tensor:
        """Unnormalised: ``-E(z) + log N(z; 0, I)``."""
        return -self.energy(z) + standard_normal_log_prob(z)

    def sample(self, n: int, generator: RandomSource = None) -> Tensor:
        """Prior Langevin from N(0, I) on ``E(z) + ||z||^2 / 2`` (docs/method.md §3.2)."""
        with frozen(self), torch.enable_grad():  # Langevin needs grad even under no_grad
            z, _ = langevin(
                self._randn(n, generator),
                lambda z: -self.log_prob(z),
                n_steps=self.steps,
                step_size=self.step_size,
                noise=True,
                generator=generator,
            )
        return z

    def learning_loss(self, z_post: Tensor, generator: RandomSource) -> Tensor:
        """``loss_E = mean E(z_post) - mean E(z_prior)`` (docs/method.md §3.2): its gradient
        step lowers the energy of posterior samples and raises that of prior samples."""
        z_prior = self.sample(z_post.shape[0], generator)  # (B, d)
        return self.energy(z_post.detach()).mean() - self.energy(z_prior).mean()


def _flow(cfg: PriorConfig, dim: int) -> Prior:
    return FlowPrior(dim, depth=cfg.flow.depth, hidden=cfg.flow.hidden)


def _gaussian(cfg: PriorConfig, dim: int) -> Prior:
    return GaussianPrior(dim)


def _ebm(cfg: PriorConfig, dim: int) -> Prior:
    return EBMPrior(
        dim,
        hidden=cfg.ebm.hidden,
        steps=cfg.ebm.langevin_steps,
        step_size=cfg.ebm.langevin_step_size,
    )


PRIORS: dict[str, Callable[[PriorConfig, int], Prior]] = {
    "flow": _flow,
    "gaussian": _gaussian,
    "ebm": _ebm,
}


assert tuple(PRIORS) == PRIOR_KINDS, "one factory per prior kind of lsnf.config"


def build_prior(cfg: PriorConfig, dim: int) -> Prior:
    """Build the prior named ``cfg.kind`` (validated by the config) for latent dimension d."""
    return PRIORS[cfg.kind](cfg, dim)
