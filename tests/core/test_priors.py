"""Contract tests of every prior (docs/method.md §2-§3): device and dtype of samples, samples
that agree with ``log_prob``, and the sign of the EBM's learning loss."""

from __future__ import annotations

import math

import pytest
import torch

from lsnf.config import PRIOR_KINDS, PriorConfig
from lsnf.core.model import build_model
from lsnf.core.priors import PRIORS, EBMPrior, build_prior


def _prior(kind: str, dim: int = 2, **over):
    cfg = PriorConfig(
        kind=kind, flow={"depth": 2, "hidden": 8}, ebm={"hidden": 8, "langevin_steps": 5, **over}
    )
    torch.manual_seed(0)
    return build_prior(cfg, dim)


def _perturb(module: torch.nn.Module, scale: float, seed: int = 1) -> None:
    """Move parameters off their initialisation (zero-initialised couplings: an affine flow)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def test_registry_has_one_factory_per_prior_kind() -> None:
    assert tuple(PRIORS) == PRIOR_KINDS


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA device on this machine"
        ),
    ),
]


@pytest.mark.parametrize("kind", PRIOR_KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_samples_follow_the_priors_device_and_dtype(kind: str, dtype: torch.dtype, device: str):
    prior = _prior(kind, dim=4).to(device=device, dtype=dtype)
    z = prior.sample(5, torch.Generator(device=device).manual_seed(0))
    assert z.shape == (5, 4) and z.dtype == dtype and z.device.type == device
    assert prior.log_prob(z).dtype == dtype and prior.log_prob(z).shape == (5,)


@pytest.mark.parametrize("kind", PRIOR_KINDS)
def test_a_double_models_samples_are_double(make_config, kind: str) -> None:
    model = build_model(make_config(prior={"kind": kind})).double().eval()
    x = model.sample(3, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64 and x.shape == (3, 1, 16, 16)


def _grid_moments(log_prob, half_width: float = 10.0, n: int = 601):
    """Mean (2,) and covariance (2, 2) of exp(log_prob) on a 2-D grid, normalised there."""
    g = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)  # (n^2, 2)
    with torch.no_grad():
        w = torch.softmax(log_prob(zz), dim=0)  # (n^2,)
    mean = (w[:, None] * zz).sum(0)
    centred = zz - mean
    return mean, (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0)


def _sample_moments(z: torch.Tensor):
    mean = z.mean(0)
    return mean, torch.cov(z.T)


@pytest.mark.parametrize("kind", ["flow", "gaussian"])
def test_exact_samplers_agree_with_log_prob(kind: str) -> None:
    """Ancestral samples have the moments of the density log_prob defines (2-D, float64)."""
    prior = _prior(kind).double()
    _perturb(prior, 0.1)
    if kind == "flow":  # the flow's density is a normalised one: it integrates to 1
        g = torch.linspace(-10, 10, 601, dtype=torch.float64)
        zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)
        with torch.no_grad():
            mass = prior.log_prob(zz).exp().sum() * (g[1] - g[0]) ** 2
        assert abs(float(mass) - 1) < 1e-3
    z = prior.sample(200_000, torch.Generator().manual_seed(3)).detach()
    mean, cov = _grid_moments(prior.log_prob)
    s_mean, s_cov = _sample_moments(z)
    assert torch.allclose(s_mean, mean, atol=0.02), (s_mean, mean)
    assert torch.allclose(s_cov, cov, atol=0.03, rtol=0.02), (s_cov, cov)


def test_flow_samples_are_the_inverse_of_its_density_map() -> None:
    """z = F^-1(eps): log p(z) = log N(eps) + log|det dF/dz| at F(z) = eps, exactly."""
    prior = _prior("flow", dim=6).double()
    _perturb(prior, 0.1)
    g = torch.Generator().manual_seed(4)
    eps = torch.randn(50, 6, generator=g, dtype=torch.float64)
    z = prior.flow.inverse(eps)
    back, logdet = prior.flow(z)
    assert torch.allclose(back, eps, atol=1e-9)
    log_n = -0.5 * eps.pow(2).sum(1) - 3 * math.log(2 * math.pi)
    assert torch.allclose(prior.log_prob(z), log_n + logdet, atol=1e-9)


def test_ebm_prior_sampler_agrees_with_its_density() -> None:
    """Prior Langevin (small steps, many of them) on a non-Gaussian 2-D energy reaches the
    moments of exp(-E(z)) N(z; 0, I), normalised on a grid."""
    prior = EBMPrior(dim=2, hidden=16, steps=1500, step_size=0.08).double()
    torch.manual_seed(0)
    _perturb(prior, 0.3)  # a tilted, skewed energy, away from N(0, I)
    mean, cov = _grid_moments(prior.log_prob)
    assert float(mean.norm()) > 0.3  # the energy moves the mass: the test can tell
    z = prior.sample(20_000, torch.Generator().manual_seed(5)).detach()
    s_mean, s_cov = _sample_moments(z)
    assert torch.allclose(s_mean, mean, atol=0.05), (s_mean, mean)
    assert torch.allclose(s_cov, cov, atol=0.06, rtol=0.05), (s_cov, cov)


def test_ebm_learning_loss_lowers_the_energy_of_posterior_samples() -> None:
    """loss_E = mean E(z_post) - mean E(z_prior): descending it makes posterior samples more
    likely under the prior than its own samples (the sign LEBM uses)."""
    prior = _prior("ebm", dim=2)
    z_post = torch.randn(256, 2, generator=torch.Generator().manual_seed(6)) + torch.tensor(
        [3.0, -1.0]
    )
    z_ref = prior.sample(256, torch.Generator().manual_seed(7))
    gap = lambda: float(prior.energy(z_post).mean().detach() - prior.energy(z_ref).mean().detach())
    before = gap()
    opt = torch.optim.SGD(prior.parameters(), lr=0.05)
    rng = torch.Generator().manual_seed(8)
    for _ in range(20):
        opt.zero_grad()
        prior.learning_loss(z_post, rng).backward()
        opt.step()
    assert gap() < before - 0.2, (before, gap())


def test_ebm_prior_sampler_moves_toward_low_energy(make_config):
    """Prior Langevin on E(z) + ||z||^2/2 with E = a.z gives N(-a, I)."""
    from lsnf.core.priors import EBMPrior

    prior = EBMPrior(dim=2, hidden=4, steps=400, step_size=0.2)
    a = torch.tensor([1.0, -2.0])
    prior.energy = lambda z: z @ a  # type: ignore[method-assign]  # a known linear energy
    z = prior.sample(3000, torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(0), -a, atol=0.1)
    assert torch.allclose(z.var(0), torch.ones(2), atol=0.1)
