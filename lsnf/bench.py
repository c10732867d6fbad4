"""Benchmark: posterior Langevin steps and training iterations, fp32 and bf16 side by side.

Prints figures (it is not a test). First what the machine is (CPU, instruction sets, native
bf16, torch's backends and threads); then, per generator shape of docs/method.md §4 (MNIST,
SVHN, CIFAR-10, CelebA-64, flow prior) and per precision (§5.4):

- images/s of one posterior Langevin step and of one training iteration (K steps + updates);
- our step against the straightforward form (one gradient call through the generator and a
  second through the prior, parameters left requiring grad, NCHW), timed interleaved;
- the step's useful FLOP/s as a share of the **ceiling** of that precision: the best measured
  throughput of a large GEMM and of every convolution / linear layer the generator runs, each
  timed alone at the step's shapes, forward and input-gradient. A step is made of those
  operations, so its share cannot exceed 100% (it would mean the ceiling was mismeasured);
- the bf16 step's speedup over the fp32 step, both timed in the same run.

Burn-in first, then the minimum over timed blocks; every figure is a ratio measured in this
run on this machine, which the header names.

    lsnf --threads 2 bench --shapes mnist,svhn --batch-size 100
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lsnf.config import PRECISIONS, config_from_dict
from lsnf.errors import UserError
from lsnf.langevin import frozen
from lsnf.model import LatentModel, build_model, infer_posterior
from lsnf.train import learning_iteration

__all__ = ["PAPER_SHAPES", "layer_ceiling", "matmul_flops_per_s", "run_bench"]

# generator, d, ngf, channels, image size, K (docs/method.md §4-§6)
PAPER_SHAPES: dict[str, dict[str, int | str]] = {
    "mnist": {"generator": "mnist", "latent_dim": 20, "ngf": 64, "channels": 1, "image_size": 28,
              "K": 20},
    "svhn": {"generator": "svhn", "latent_dim": 100, "ngf": 64, "channels": 3, "image_size": 32,
             "K": 20},
    "cifar10": {"generator": "cifar10", "latent_dim": 128, "ngf": 128, "channels": 3,
                "image_size": 32, "K": 40},
    "celeba64": {"generator": "celeba64", "latent_dim": 100, "ngf": 128, "channels": 3,
                 "image_size": 64, "K": 20},
}  # fmt: skip
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
assert tuple(DTYPES) == PRECISIONS, "a dtype per precision of lsnf.config"


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


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _autocast(precision: str) -> Iterator[None]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def matmul_flops_per_s(precision: str = "fp32", n: int = 2048, blocks: int = 5) -> float:
    """This machine's matrix-multiply throughput in ``precision`` (n x n x n GEMM), FLOP/s."""
    a, b = (torch.randn(n, n, dtype=DTYPES[precision]) for _ in range(2))
    return 2 * n**3 / _min_time(lambda: a @ b, blocks)


def _layer_inputs(model: LatentModel, z: Tensor) -> list[tuple[nn.Module, Tensor]]:
    """Every convolution / linear layer of the generator with the input it sees at ``z``."""
    seen: list[tuple[nn.Module, Tensor]] = []
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append((m, args[0].detach())))
             for m in model.generator.modules() if isinstance(m, layers)]  # fmt: skip
    try:
        with torch.no_grad():
            model.generator(z)
    finally:
        for h in hooks:
            h.remove()
    return seen


def layer_ceiling(model: LatentModel, z: Tensor, precision: str, blocks: int) -> float:
    """The best throughput (FLOP/s) of the generator's own layers, each timed alone at the
    step's shapes in ``precision``, forward and input-gradient (what a Langevin step runs)."""
    best = 0.0
    for layer, inp in _layer_inputs(model, z):
        x = inp.clone().requires_grad_(True)

        def forward(layer: nn.Module = layer, x: Tensor = x) -> None:
            with _autocast(precision), torch.no_grad():
                layer(x)

        def input_grad(layer: nn.Module = layer, x: Tensor = x) -> None:
            with _autocast(precision):
                out = layer(x)
            x.grad = None  # backward(), not autograd.grad(): FlopCounterMode must see it
            out.backward(torch.ones_like(out))

        with frozen(layer):
            for fn in (forward, input_grad):
                best = max(best, _flops(fn) / _min_time(fn, blocks))
    return best


def straightforward_steps(model: LatentModel, x: Tensor, z0: Tensor, steps: int, s: float,
                          rng: torch.Generator) -> Tensor:  # fmt: skip
    """The research-code form of docs/method.md eq. 5.1: two gradient calls per step (generator,
    then prior), parameters left requiring grad; run on an NCHW copy of the model, as theirs."""
    z = z0
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        recon = (x - model.decode(z)).pow(2).flatten(1).sum(1) / (2 * model.sigma**2)  # (B,)
        (g_lik,) = torch.autograd.grad(recon.sum(), z)
        (g_prior,) = torch.autograd.grad(-model.prior.log_prob(z).sum(), z)
        noise = torch.randn(z.shape, generator=rng, dtype=z.dtype, device=z.device)  # (B, d)
        z = z.detach() - 0.5 * s * s * (g_lik + g_prior) + s * noise
    return z


def _step_flops(model: LatentModel, x: Tensor, z0: Tensor) -> int:
    # FlopCounterMode cannot watch autograd.grad(); backward() on a leaf z does the same work
    z = z0.detach().clone().requires_grad_(True)
    with frozen(model):
        return _flops(lambda: model.energy(z, x).sum().backward())


def bench_shape(
    name: str, precision: str, batch_size: int, blocks: int, steps_per_block: int,
    gemm: dict[str, float],
) -> dict[str, float]:  # fmt: skip
    """One shape in one precision: step and iteration times, ours over the straightforward
    form, the step's FLOPs and this precision's ceiling."""
    shape = dict(PAPER_SHAPES[name])
    k = int(shape.pop("K"))
    cfg = config_from_dict({"model": shape, "prior": {"kind": "flow"}, "precision": precision})
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
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_p = torch.optim.Adam(model.prior.parameters(), lr=1e-4, betas=(0.5, 0.999))
    iteration = lambda: learning_iteration(model, x, opt_g, opt_p, k, 0.1, rng)
    t_iter = _min_time(iteration, blocks=2, burn_in=0)  # warm already; an iteration is K steps
    with frozen(model):
        layers = layer_ceiling(model, z0, precision, blocks)
    return {
        "K": k, "step_s": t_ours / steps_per_block, "naive_step_s": t_naive / steps_per_block,
        "iter_s": t_iter, "flops": _step_flops(model, x, z0),
        "ceiling": max(gemm[precision], layers), "layer_ceiling": layers,
    }  # fmt: skip


def _print_machine() -> None:
    from lsnf.hardware import describe

    m = describe()
    flags = " ".join(f"{f}{'+' if on else '-'}" for f, on in m["flags"].items())
    print(f"machine: {m['cpu']}; {flags}; native bf16: {'yes' if m['native_bf16'] else 'NO'}")
    print(f"torch {m['torch']}: CPU capability {m['cpu_capability']}, {m['threads']} threads, "
          f"oneDNN {'on' if m['mkldnn'] else 'off'}, MKL {'on' if m['mkl'] else 'off'}, "
          f"CUDA {m['cuda'] or 'none'}")  # fmt: skip


def run_bench(
    shapes: list[str], batch_size: int, blocks: int, steps_per_block: int,
    precisions: tuple[str, ...] = PRECISIONS,
) -> list[dict[str, float]]:  # fmt: skip
    """Run and print the benchmark for each named shape and precision; return the raw figures
    (torch's thread count is the caller's: ``lsnf --threads N bench``)."""
    unknown = [s for s in shapes if s not in PAPER_SHAPES]
    if unknown:
        raise UserError(f"unknown shapes {unknown}; choose from {sorted(PAPER_SHAPES)}")
    _print_machine()
    gemm = {p: matmul_flops_per_s(p) for p in precisions}
    print(f"batch {batch_size}, burn-in 1 block, min over {blocks} blocks of {steps_per_block} "
          f"steps; GEMM 2048^3: " + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s"
                                               for p, v in gemm.items()))  # fmt: skip
    cols = ["step img/s", "% ceiling", "ceiling GF/s", "ours/naive", "iter img/s"]
    print(f"{'shape':9} {'prec':4} " + " ".join(f"{c:>12}" for c in cols) + f" {'vs fp32':>8}")
    rows = []
    for name in shapes:
        fp32_step = None
        for precision in precisions:
            r = bench_shape(name, precision, batch_size, blocks, steps_per_block, gemm)
            fp32_step = r["step_s"] if precision == "fp32" else fp32_step
            speedup = fp32_step / r["step_s"] if fp32_step else float("nan")
            values = [batch_size / r["step_s"], 100 * r["flops"] / r["step_s"] / r["ceiling"],
                      r["ceiling"] / 1e9, r["naive_step_s"] / r["step_s"],
                      batch_size / r["iter_s"]]  # fmt: skip
            formats = ("12.1f", "12.1f", "12.0f", "12.2f", "12.1f")
            cells = " ".join(f"{v:{f}}" for v, f in zip(values, formats, strict=True))
            print(f"{name:9} {precision:4} {cells} {speedup:7.2f}x", flush=True)
            rows.append({"shape": name, "precision": precision, "speedup": speedup, **r})
    print(
        "% ceiling: the step's useful FLOP/s over the best of a GEMM and the generator's own "
        "layers (forward, input-gradient) in that precision.\n"
        "ours/naive: our step (one gradient call, frozen parameters, NHWC) over the "
        "research-code form (two gradient calls, NCHW); >= 1 is the target.\n"
        "vs fp32: the step's speedup over the fp32 step of the same shape, this run."
    )
    return rows
