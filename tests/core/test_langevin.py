"""Short-run Langevin (docs/method.md §5) against analytic posteriors of linear-Gaussian
models, and against the benchmark's two-gradient reference form."""

from __future__ import annotations

import pytest
import torch

from lsnf.core.langevin import frozen, langevin, posterior_energy
from lsnf.core.model import LatentModel, batchnorm_statistics_kept, build_model, infer_posterior

D_LATENT = 2


def _linear_model(make_config, prior: str, sigma: float = 1.0) -> LatentModel:
    cfg = make_config(
        model={
            "generator": "linear",
            "latent_dim": D_LATENT,
            "channels": 3,
            "image_size": 1,
            "sigma": sigma,
        },
        prior={"kind": prior, "flow": {"depth": 2, "hidden": 8}},
    )
    model = build_model(cfg).double()
    with torch.no_grad():
        lin = model.generator.body[0]
        lin.weight.copy_(torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.6, -0.4]]))  # (3, 2)
        lin.bias.copy_(torch.tensor([0.2, -0.1, 0.3]))
    return model


def _analytic_posterior(model: LatentModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian prior N(m0, S0) (the flow is affine at init) and linear likelihood."""
    d = D_LATENT
    w = model.generator.body[0].weight  # (3, 2)
    b = model.generator.body[0].bias  # (3,)
    # prior moments from its exact log-density: quadratic, so read them off by autograd
    z0 = torch.zeros(1, d, dtype=torch.float64, requires_grad=True)
    hess = torch.autograd.functional.hessian(lambda z: -model.prior.log_prob(z).sum(), z0)
    p0 = hess.reshape(d, d)  # prior precision
    g0 = torch.autograd.grad(-model.prior.log_prob(z0).sum(), z0)[0].reshape(d)
    m0 = -torch.linalg.solve(p0, g0)  # prior mean
    prec = p0 + w.T @ w / model.sigma**2
    cov = torch.linalg.inv(prec)
    mean = cov @ (p0 @ m0 + w.T @ (x.reshape(3) - b) / model.sigma**2)
    return mean.detach(), cov.detach()


@pytest.mark.parametrize("prior", ["gaussian", "flow"])
def test_langevin_recovers_analytic_posterior(make_config, prior: str) -> None:
    model = _linear_model(make_config, prior)
    x = torch.tensor([0.7, -0.2, 0.4], dtype=torch.float64).view(1, 3, 1, 1)
    mean, cov = _analytic_posterior(model, x)
    n_chains = 4000
    rng = torch.Generator().manual_seed(0)
    z0 = torch.randn(n_chains, D_LATENT, generator=rng, dtype=torch.float64)
    z, _ = infer_posterior(
        model,
        x.expand(n_chains, -1, -1, -1),
        steps=1500,
        step_size=0.1,
        noise=True,
        generator=rng,
        z0=z0,
    )
    emp_mean = z.mean(0)
    emp_cov = torch.cov(z.T)
    assert torch.allclose(emp_mean, mean, atol=0.04), (emp_mean, mean)
    assert torch.allclose(emp_cov, cov, atol=0.04 * float(cov.diag().max())), (emp_cov, cov)


def test_noise_free_langevin_descends_the_energy(make_config) -> None:
    cfg = make_config(
        model={"generator": "mnist", "latent_dim": 4, "ngf": 4, "channels": 1, "image_size": 28}
    )
    model = build_model(cfg).eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    _, trace = infer_posterior(
        model, x, steps=30, step_size=0.02, noise=False, generator=None, z0=z0, record=True
    )
    e = torch.tensor(trace.energies)
    assert e[-1] < e[0]
    assert bool((e[1:] <= e[:-1] + 1e-4).all()), e


def test_noise_free_is_deterministic_and_noisy_depends_on_generator() -> None:
    energy = lambda z: 0.5 * z.pow(2).sum(1)
    z0 = torch.ones(4, 3)
    a, _ = langevin(z0, energy, 10, 0.1, noise=False)
    b, _ = langevin(z0, energy, 10, 0.1, noise=False)
    assert torch.equal(a, b)
    c, _ = langevin(z0, energy, 10, 0.1, noise=True, generator=torch.Generator().manual_seed(5))
    d, _ = langevin(z0, energy, 10, 0.1, noise=True, generator=torch.Generator().manual_seed(5))
    e, _ = langevin(z0, energy, 10, 0.1, noise=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(c, d) and not torch.equal(c, e)
    # one step of noise-free Langevin on ||z||^2/2 is z (1 - s^2/2)
    one, _ = langevin(z0, energy, 1, 0.1, noise=False)
    assert torch.allclose(one, z0 * (1 - 0.005))


def test_each_example_gets_its_own_gradient(make_config) -> None:
    """Batch composition must not change one example's trajectory (energies summed, not mixed)."""
    model = _linear_model(make_config, "flow")
    x = torch.randn(5, 3, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z0 = torch.randn(5, D_LATENT, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full, _ = infer_posterior(model, x, 20, 0.1, False, None, z0=z0)
    single, _ = infer_posterior(model, x[2:3], 20, 0.1, False, None, z0=z0[2:3])
    assert torch.allclose(full[2:3], single, atol=1e-12)


def test_posterior_energy_gradient_matches_finite_differences(make_config) -> None:
    cfg = make_config(
        model={"generator": "svhn", "latent_dim": 4, "ngf": 2, "channels": 3, "image_size": 32},
        prior={"kind": "flow"},
    )
    model = build_model(cfg).double()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda z: posterior_energy(z, x, model.generator, model.prior.neg_log_prob, 0.3)
    assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-5)


def test_mask_ignores_hidden_pixels(make_config) -> None:
    cfg = make_config(
        model={"generator": "mnist", "latent_dim": 4, "ngf": 4, "channels": 1, "image_size": 28}
    )
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    mask = (torch.rand(2, 1, 28, 28, generator=g) > 0.5).float()
    poisoned = torch.where(mask.bool(), x, torch.full_like(x, float("nan")))
    z0 = torch.randn(2, 4, generator=g)
    a, _ = infer_posterior(model, x, 10, 0.1, False, None, mask=mask, z0=z0)
    b, _ = infer_posterior(model, poisoned, 10, 0.1, False, None, mask=mask, z0=z0)
    assert torch.isfinite(b).all() and torch.equal(a, b)


@pytest.mark.parametrize("prior", ["flow", "ebm"])
def test_benchmark_reference_step_equals_infer_posterior(make_config, prior: str) -> None:
    """lsnf.bench times our step against the research code's form (a gradient call through
    the generator, another through the prior): from the same z0 and noise they give one z."""
    from lsnf.bench import straightforward_steps

    cfg = make_config(
        model={"generator": "mnist", "latent_dim": 4, "ngf": 4, "channels": 1, "image_size": 28},
        prior={"kind": prior},
    )
    model = build_model(cfg).double().train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1
    z0 = torch.randn(8, 4, generator=g, dtype=torch.float64)
    ours, _ = infer_posterior(model, x, 5, 0.1, True, torch.Generator().manual_seed(1), z0=z0)
    ref = straightforward_steps(model, x, z0, 5, 0.1, torch.Generator().manual_seed(1))
    assert torch.allclose(ours, ref.detach(), atol=1e-10)
    assert not torch.allclose(ours, z0)  # the steps moved z


@pytest.mark.parametrize("noise", [False, True])
def test_reading_the_error_along_the_way_does_not_change_it(make_config, noise: bool) -> None:
    """The K_test-sensitivity readings come from one trajectory: the errors at K_test are those
    of running K_test steps at once, with or without test-time noise (same seed)."""
    from lsnf.core.inference import InferenceSettings, reconstruction_errors, step_counts

    model = build_model(make_config()).eval()
    images = torch.randint(
        0, 256, (12, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    settings = InferenceSettings(steps=20, step_size=0.1, batch_size=5, seed=3, noise=noise)
    assert step_counts(20) == (1, 2, 5, 10, 20) and step_counts(3) == (1, 2, 3)
    along = reconstruction_errors(model, images, settings, step_counts(20))
    at_once = reconstruction_errors(model, images, settings)
    assert list(along) == [1, 2, 5, 10, 20] and list(at_once) == [20]
    assert torch.equal(along[20], at_once[20])
    assert float(along[20].mean()) < float(along[1].mean())  # inference lowers the error


def test_bf16_langevin_recovers_the_analytic_posterior_within_a_looser_tolerance(
    make_config,
) -> None:
    """precision bf16 (docs/method.md §5.4): the generator under bf16 autocast, energies and
    latents fp32; 4,000 chains still find the linear-Gaussian posterior, within 0.06 of its
    mean and 8% of its largest variance (fp32/fp64: 0.04, 4%)."""
    exact = _linear_model(make_config, "gaussian")  # float64, for the analytic answer
    model = _linear_model(make_config, "gaussian").float()
    model.precision = "bf16"
    x = torch.tensor([0.7, -0.2, 0.4]).view(1, 3, 1, 1)
    mean, cov = _analytic_posterior(exact, x.double())
    n_chains = 4000
    rng = torch.Generator().manual_seed(0)
    z0 = torch.randn(n_chains, D_LATENT, generator=rng)
    xs = x.expand(n_chains, -1, -1, -1)
    assert model.decode(z0).dtype == torch.float32 and model.energy(z0, xs).dtype == torch.float32
    z, _ = infer_posterior(model, xs, steps=1500, step_size=0.1, noise=True, generator=rng, z0=z0)
    assert z.dtype == torch.float32
    emp_mean, emp_cov = z.double().mean(0), torch.cov(z.double().T)
    assert torch.allclose(emp_mean, mean, atol=0.06), (emp_mean, mean)
    assert torch.allclose(emp_cov, cov, atol=0.08 * float(cov.diag().max())), (emp_cov, cov)
    # the generator really ran in bf16: its output differs from the fp32 one by bf16 rounding
    model32 = _linear_model(make_config, "gaussian").float()
    with torch.no_grad():
        diff = (model.decode(z0[:100]) - model32.decode(z0[:100])).abs().max()
    assert 1e-4 < float(diff) < 0.05


def test_bench_counts_the_ops_of_one_langevin_step(make_config) -> None:
    """lsnf bench's ops/step (issue: the flow prior's step dispatches many small kernels): the
    count of one step, the same for the second and the third, more for the flow prior than for
    the Gaussian one, whose step is the generator's and the energy's alone."""
    from lsnf.bench import _dispatched_ops, ops_per_step
    from lsnf.core.model import build_model, infer_posterior

    cfg = make_config()
    model = build_model(cfg).train()
    x, z0 = torch.zeros(8, 1, 16, 16), torch.zeros(8, cfg.model.latent_dim)
    rng = lambda: torch.Generator().manual_seed(0)
    count = lambda k: _dispatched_ops(lambda: infer_posterior(model, x, k, 0.1, True, rng(), z0=z0))
    assert count(3) - count(2) == count(2) - count(1) == ops_per_step(cfg, 8)
    gaussian = make_config(prior={"kind": "gaussian"})
    assert ops_per_step(cfg, 8) > ops_per_step(gaussian, 8) > 0


@pytest.mark.parametrize("shape", ["mnist", "svhn"])
def test_the_flow_priors_langevin_step_dispatches_at_most_150_ops(shape: str) -> None:
    """Issue: the flow prior's step at the paper's MNIST and SVHN shapes (batch 100, eager) in
    at most 150 non-view aten ops, against 368 and 346 before folding (docs/method.md §2.6)."""
    from lsnf.bench import PAPER_SHAPES, ops_per_step
    from lsnf.config import config_from_dict

    model = {k: v for k, v in PAPER_SHAPES[shape].items() if k != "K"}
    flow = ops_per_step(config_from_dict({"model": model, "prior": {"kind": "flow"}}), 100)
    gaussian = ops_per_step(config_from_dict({"model": model, "prior": {"kind": "gaussian"}}), 100)
    assert flow <= 150, flow
    assert flow - gaussian <= 100  # the flow's own share: 5 steps' forward and backward


def test_infer_posterior_with_the_folded_flow_equals_the_unfolded_energy(make_config) -> None:
    """Posterior inference folds the frozen flow once per call (docs/method.md §2.6); its
    trajectory equals Langevin on the unfolded energy (5.2) to float64 round-off."""
    cfg = make_config()
    model = build_model(cfg).double().train()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5)))
    g = torch.Generator().manual_seed(6)
    x = torch.rand(6, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    z0 = torch.randn(6, cfg.model.latent_dim, generator=g, dtype=torch.float64)
    z, _ = infer_posterior(model, x, 5, 0.1, True, torch.Generator().manual_seed(7), z0=z0)
    with frozen(model), batchnorm_statistics_kept(model):
        expected, _ = langevin(
            z0, lambda v: model.energy(v, x), 5, 0.1, True, torch.Generator().manual_seed(7)
        )
    assert (z - z0).abs().max() > 1e-2
    assert torch.allclose(z, expected, rtol=0, atol=1e-10)
