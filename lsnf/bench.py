"""Benchmark: posterior Langevin steps and training iterations at the paper's shapes.

Prints figures (it is not a test): images/s per Langevin step and per training iteration at
the SVHN, CIFAR-10 and CelebA-64 generator shapes of docs/method.md §4 with the flow prior; the
generator/prior split of a step; our step against the straightforward form (one gradient call
through the generator and a second through the prior, parameters left requiring grad, default
NCHW layout), timed interleaved in the same process; and the step's useful FLOP/s as a share
of this machine's matrix-multiply throughput. Burn-in first, then the minimum over timed blocks.

    lsnf --threads 2 bench --shapes svhn --batch-size 100
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import Tensor

from lsnf.config import config_from_dict
from lsnf.errors import UserError
from lsnf.langevin import frozen
from lsnf.model import LatentModel, build_model, infer_posterior
from lsnf.train import learning_iteration

__all__ = ["PAPER_SHAPES", "matmul_flops_per_s", "run_bench"]

# generator, d, ngf, channels, image size, K (docs/method.md §4-§6)
PAPER_SHAPES: dict[str, dict[str, int | str]] = {
    "svhn": {"generator": "svhn", "latent_dim": 100, "ngf": 64, "channels": 3, "image_size": 32,
             "K": 20},
    "cifar10": {"generator": "cifar10", "latent_dim": 128, "ngf": 128, "channels": 3,
                "image_size": 32, "K": 40},
    "celeba64": {"generator": "celeba64", "latent_dim": 100, "ngf": 128, "channels": 3,
                 "image_size": 64, "K": 20},
}  # fmt: skip


def _min_time(fn: Callable[[], object], blocks: int, burn_in: int = 1) -> float:
    for _ in range(burn_in):
        fn()
    best = float("inf")
    for _ in range(blocks):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _interleaved_min(fns: list[Callable[[], object]], blocks: int) -> list[float]:
    """Time several functions in alternation (same conditions); min per function."""
    for fn in fns:
        fn()  # burn-in
    best = [float("inf")] * len(fns)
    for _ in range(blocks):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def matmul_flops_per_s(n: int = 2048, blocks: int = 5) -> float:
    """This machine's float32 matrix-multiply throughput (the ceiling), FLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / _min_time(lambda: a @ b, blocks)


def straightforward_steps(model: LatentModel, x: Tensor, z0: Tensor, steps: int, s: float,
                          rng: torch.Generator) -> Tensor:  # fmt: skip
    """The research-code form of docs/method.md eq. 5.1: two gradient calls per step (generator,
    then prior), parameters left requiring grad; run on an NCHW copy of the model, as theirs."""
    z = z0
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        recon = (x - model.generator(z)).pow(2).flatten(1).sum(1) / (2 * model.sigma**2)  # (B,)
        (g_lik,) = torch.autograd.grad(recon.sum(), z)
        (g_prior,) = torch.autograd.grad(-model.prior.log_prob(z).sum(), z)
        noise = torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)  # (B, d)
        z = z.detach() - 0.5 * s * s * (g_lik + g_prior) + s * noise
    return z


def _step_flops(model: LatentModel, x: Tensor, z0: Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    # FlopCounterMode cannot watch autograd.grad(); backward() on a leaf z does the same work
    z = z0.detach().clone().requires_grad_(True)
    with frozen(model), FlopCounterMode(display=False) as counter:
        model.energy(z, x).sum().backward()
    return int(counter.get_total_flops())


def bench_shape(name: str, batch_size: int, blocks: int, steps_per_block: int,
                ceiling: float) -> dict[str, float]:  # fmt: skip
    shape = dict(PAPER_SHAPES[name])
    k = int(shape.pop("K"))
    cfg = config_from_dict({"model": shape, "prior": {"kind": "flow"}})
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    b, c, sz, d = batch_size, cfg.model.channels, cfg.model.image_size, cfg.model.latent_dim
    x = torch.rand(b, c, sz, sz, generator=g) * 2 - 1  # (B, C, H, W)
    z0 = torch.randn(b, d, generator=g)  # (B, d)
    rng = torch.Generator().manual_seed(1)

    research = copy.deepcopy(model).to(memory_format=torch.contiguous_format)  # NCHW, as theirs
    ours = lambda: infer_posterior(model, x, steps_per_block, 0.1, True, rng, z0=z0)
    naive = lambda: straightforward_steps(research, x, z0, steps_per_block, 0.1, rng)
    t_ours, t_naive = _interleaved_min([ours, naive], blocks)
    t_ours, t_naive = t_ours / steps_per_block, t_naive / steps_per_block

    def gen_only() -> None:
        z = z0.detach().requires_grad_(True)
        torch.autograd.grad((x - model.generator(z)).pow(2).sum(), z)

    def prior_only() -> None:
        z = z0.detach().requires_grad_(True)
        torch.autograd.grad(model.prior.log_prob(z).sum(), z)

    with frozen(model):
        t_gen, t_prior = _interleaved_min([gen_only, prior_only], blocks)

    opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_p = torch.optim.Adam(model.prior.parameters(), lr=1e-4, betas=(0.5, 0.999))
    iteration = lambda: learning_iteration(model, x, opt_g, opt_p, k, 0.1, rng)
    t_iter = _min_time(iteration, blocks=2, burn_in=0)  # warm already; an iteration is K steps
    flops = _step_flops(model, x, z0)
    return {
        "K": k, "step_s": t_ours, "naive_step_s": t_naive, "gen_s": t_gen, "prior_s": t_prior,
        "iter_s": t_iter, "flops": flops, "ceiling": ceiling,
    }  # fmt: skip


def run_bench(
    shapes: list[str], batch_size: int, blocks: int, steps_per_block: int
) -> list[dict[str, float]]:
    """Run and print the benchmark for each named shape; return the raw figures (torch's
    thread count is the caller's: ``lsnf --threads N bench``)."""
    unknown = [s for s in shapes if s not in PAPER_SHAPES]
    if unknown:
        raise UserError(f"unknown shapes {unknown}; choose from {sorted(PAPER_SHAPES)}")
    ceiling = matmul_flops_per_s()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {batch_size}, "
          f"burn-in 1 block, min over {blocks} blocks of {steps_per_block} steps")  # fmt: skip
    print(f"matmul ceiling (float32 2048^3): {ceiling / 1e9:.1f} GFLOP/s")
    header = (f"{'shape':9} {'step img/s':>10} {'naive img/s':>11} {'ours/naive':>10} "
              f"{'gen %':>6} {'prior %':>7} {'GFLOP/step':>10} {'% ceiling':>9} "
              f"{'iter img/s':>10} {'K':>3} {'K*step/iter':>11}")  # fmt: skip
    print(header)
    rows = []
    for name in shapes:
        r = bench_shape(name, batch_size, blocks, steps_per_block, ceiling)
        split = r["gen_s"] + r["prior_s"]
        print(
            f"{name:9} {batch_size / r['step_s']:10.1f} {batch_size / r['naive_step_s']:11.1f} "
            f"{r['naive_step_s'] / r['step_s']:10.2f} {100 * r['gen_s'] / split:6.1f} "
            f"{100 * r['prior_s'] / split:7.1f} {r['flops'] / 1e9:10.2f} "
            f"{100 * r['flops'] / r['step_s'] / ceiling:9.1f} {batch_size / r['iter_s']:10.2f} "
            f"{r['K']:3d} {r['K'] * r['step_s'] / r['iter_s']:11.2f}",
            flush=True,
        )
        rows.append({"shape": name, **r})
    print(
        "ours/naive: throughput of our step (one gradient call, frozen parameters, NHWC) over "
        "the research-code form (two gradient calls, NCHW); >= 1 is the target.\n"
        "K*step/iter: share of a training iteration spent in its K Langevin steps (the rest is "
        "the generator and prior updates)"
    )
    return rows
