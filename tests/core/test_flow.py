"""The Glow-style vector flow (docs/method.md §2): each block and the whole flow are invertible
with exact log-determinants, and the density is exact."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from lsnf.core.flow import ActNorm, AffineCoupling, FoldedFlow, GlowVectorFlow, InvertibleLinear


def _flow(d: int, depth: int = 3, hidden: int = 16, seed: int = 0, perturb: bool = True):
    torch.manual_seed(seed)
    flow = GlowVectorFlow(d, depth=depth, hidden=hidden).double()
    if perturb:  # leave the zero-init so couplings are non-trivial
        with torch.no_grad():
            for p in flow.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("d", [2, 4, 6, 10])
def test_inverse_roundtrip(d: int) -> None:
    flow = _flow(d)
    z = torch.randn(7, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps, _ = flow(z)
    assert torch.allclose(flow.inverse(eps), z, atol=1e-10)
    assert torch.allclose(flow(flow.inverse(eps))[0], eps, atol=1e-10)


@pytest.mark.parametrize("d", [2, 4, 6, 10])
def test_logdet_equals_slogdet_of_autograd_jacobian(d: int) -> None:
    flow = _flow(d)
    z = torch.randn(5, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, logdet = flow(z)
    for i in range(z.shape[0]):
        jac = jacobian(lambda v: flow(v.unsqueeze(0))[0].squeeze(0), z[i])  # (d, d)
        sign, expected = torch.linalg.slogdet(jac)
        assert sign != 0
        assert torch.allclose(logdet[i], expected, atol=1e-9), (logdet[i], expected)


def test_log_prob_matches_gaussian_when_flow_is_affine() -> None:
    """At init the couplings output zero, so F(z) = zA + c and p(z) is a known Gaussian."""
    d = 6
    flow = _flow(d, perturb=False)
    z = torch.randn(9, d, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    c = flow(torch.zeros(1, d, dtype=torch.float64))[0]  # (1, d)
    a = flow(torch.eye(d, dtype=torch.float64))[0] - c  # (d, d), rows = images of basis
    assert torch.allclose(flow(z)[0], z @ a + c, atol=1e-10)  # really affine
    a_inv = torch.linalg.inv(a)
    mvn = torch.distributions.MultivariateNormal(
        loc=(-c @ a_inv).squeeze(0), covariance_matrix=a_inv.T @ a_inv
    )
    assert torch.allclose(flow.log_prob(z), mvn.log_prob(z), atol=1e-9)


def test_normalising_constant_integrates_to_one_in_2d() -> None:
    """Riemann sum of exp(log p) over a wide grid is 1 (catches a wrong constant)."""
    flow = _flow(2, depth=2, perturb=True)  # scales are O(1): the mass lies inside [-12, 12]^2
    g = torch.linspace(-12, 12, 801, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow.log_prob(zz).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1.0) < 1e-3


def test_standard_normal_constant() -> None:
    """With identity maps the flow is N(0, I): log p(0) = -(d/2) log 2 pi."""
    d = 4
    flow = GlowVectorFlow(d, depth=1, hidden=8).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
        flow.steps[0].linear.weight.copy_(torch.eye(d))
        flow.steps[0].coupling.net[-1].linear.bias[1::2] = 100.0  # sigmoid(h + 2) -> 1
    z = torch.zeros(1, d, dtype=torch.float64)
    assert math.isclose(
        float(flow.log_prob(z).detach()), -0.5 * d * math.log(2 * math.pi), abs_tol=1e-9
    )


def test_gradients_reach_every_parameter() -> None:
    flow = _flow(6)
    z = torch.randn(8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    flow.log_prob(z).mean().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_batch_of_one_and_sampling_shapes() -> None:
    from lsnf.core.priors import FlowPrior

    flow = _flow(4).float()
    z = torch.randn(1, 4, generator=torch.Generator().manual_seed(5))
    eps, logdet = flow(z)
    assert eps.shape == (1, 4) and logdet.shape == (1,)
    assert flow.log_prob(z).shape == (1,)
    prior = FlowPrior(4, depth=2, hidden=8)
    for n in (1, 7):
        samples = prior.sample(n, torch.Generator().manual_seed(n))
        assert samples.shape == (n, 4) and torch.isfinite(samples).all()


def _block(kind: str, d: int):
    torch.manual_seed(6)
    block = {
        "actnorm": lambda: ActNorm(d),
        "linear": lambda: InvertibleLinear(d),
        "coupling": lambda: AffineCoupling(d, hidden=8),
    }[kind]().double()
    with torch.no_grad():  # off the zero-initialised coupling output, so the test can tell
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return block


@pytest.mark.parametrize("kind", ["actnorm", "linear", "coupling"])
@pytest.mark.parametrize("d", [2, 6])
def test_each_block_inverts_and_has_the_autograd_log_det(kind: str, d: int) -> None:
    """Per flow block (docs/method.md §2.1-§2.3): inverse(forward(z)) = z, and the log-det it
    reports equals slogdet of its autograd Jacobian at every row."""
    block = _block(kind, d)
    z = torch.randn(4, d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y, logdet = block(z)
    assert torch.allclose(block.inverse(y), z, atol=1e-10)
    logdet = logdet.expand(z.shape[0])  # ActNorm and the linear map give one scalar for all rows
    for i in range(z.shape[0]):
        jac = jacobian(lambda v: block(v.unsqueeze(0))[0].squeeze(0), z[i])  # (d, d)
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jac)[1], atol=1e-9), kind


@pytest.mark.parametrize("d", [1, 3, 7])
def test_odd_dimension_is_a_clear_error(d: int) -> None:
    with pytest.raises(ValueError, match="even"):
        GlowVectorFlow(d)


@pytest.mark.parametrize(("d", "depth", "hidden"), [(2, 1, 4), (6, 3, 16), (20, 5, 64)])
def test_folded_flow_equals_the_flow_in_value_and_z_gradient(d: int, depth: int, hidden: int):
    """docs/method.md §2.6: the folded -log p_a and its hand-written z-gradient equal the
    module's (autograd through §2.1-§2.4) to float64 round-off, for any output gradient."""
    flow = _flow(d, depth=depth, hidden=hidden, seed=d)
    flow.requires_grad_(False)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(11, d, generator=g, dtype=torch.float64, requires_grad=True)
    g_out = torch.randn(11, generator=g, dtype=torch.float64)  # not all equal: rows differ
    expected = -flow.log_prob(z)
    folded = FoldedFlow(flow).neg_log_prob(z)
    assert torch.allclose(folded, expected, rtol=0, atol=1e-11)
    (grad_expected,) = torch.autograd.grad(expected, z, g_out)
    (grad_folded,) = torch.autograd.grad(folded, z, g_out)
    assert grad_expected.abs().max() > 0.1  # a gradient worth comparing
    assert torch.allclose(grad_folded, grad_expected, rtol=0, atol=1e-11)
    assert torch.autograd.gradcheck(FoldedFlow(flow).neg_log_prob, (z[:3],))


def test_folded_flow_keeps_no_tie_to_changed_parameters_and_runs_in_fp32_under_autocast():
    """A folded flow is a snapshot: rebuilt after the parameters change it follows them; under
    bf16 autocast (the generator's precision) the prior stays fp32 (docs/method.md §5.4)."""
    flow = _flow(4).float().requires_grad_(False)
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(4))
    before = FoldedFlow(flow)
    with torch.no_grad():
        flow.steps[0].actnorm.bias.add_(1.0)
    assert torch.allclose(FoldedFlow(flow).neg_log_prob(z), -flow.log_prob(z), atol=1e-4)
    assert not torch.allclose(before.neg_log_prob(z), -flow.log_prob(z), atol=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = FoldedFlow(flow).neg_log_prob(z)
    assert out.dtype == torch.float32
    assert torch.allclose(out, -flow.log_prob(z), atol=1e-4)
