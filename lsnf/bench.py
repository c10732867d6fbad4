"""Benchmark: posterior Langevin steps and training iterations, fp32 and bf16 side by side.

Prints figures (it is not a test). First what the machine is (CPU, instruction sets, native
bf16, torch's backends and threads); then, per generator shape of docs/method.md §4 (MNIST,
SVHN, CIFAR-10, CelebA-64, flow prior) and per precision (§5.4):

- images/s of one posterior Langevin step and of one training iteration (K steps + updates);
- our step against the straightforward form (one gradient call through the generator and a
  second through the prior, parameters left requiring grad, NCHW, torch's own layers);
- the step's useful FLOP/s as a share of the **ceiling** of that precision: the best measured
  throughput of a large GEMM and of every convolution / linear layer the generator runs, each
  timed alone at the step's shapes, forward and input-gradient. A step is made of those
  operations, so its share cannot exceed 100% (it would mean the ceiling was mismeasured);
- the **layers-only** share: the generator's layers alone, summed, over the same ceiling. Up to
  timing noise it bounds the step's share from above (the step also runs the prior, BatchNorm,
  activations and the energy), so it tells how much of a gap is the layers' own kernels and
  how much the rest;
- the bf16 step's speedup over the fp32 step, timed in the same blocks;
- first, per shape and prior: **ops/step**, the non-view aten operators one posterior Langevin
  step dispatches (training mode, fp32, counted with a ``TorchDispatchMode``: the difference
  between 2 and 1 steps, so set-up is not counted). On a GPU each is a kernel launch, so the
  count bounds a small step's speed there whatever the arithmetic (:func:`ops_per_step`).

Burn-in first, then blocks in which the step, the research form, the GEMM and every layer run
in turn, each keeping its minimum: every figure is a ratio measured in the same blocks of this
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

from lsnf.config import PRECISIONS, RunConfig, config_from_dict
from lsnf.core.generators import with_torch_layers
from lsnf.core.langevin import frozen
from lsnf.core.model import LatentModel, build_model, infer_posterior
from lsnf.errors import UserError
from lsnf.training.train import learning_iteration

__all__ = [
    "PAPER_SHAPES",
    "bench_shape",
    "count_flops",
    "interleaved_min",
    "layer_fns",
    "layer_inputs",
    "ops_per_step",
    "research_copy",
    "run_bench",
    "straightforward_steps",
]

# shape (its generator's name too): d, ngf, channels, image size, K (docs/method.md §4-§6)
_SHAPES = {
    "mnist": (20, 64, 1, 28, 20),
    "svhn": (100, 64, 3, 32, 20),
    "cifar10": (128, 128, 3, 32, 40),
    "celeba64": (100, 128, 3, 64, 20),
}
PAPER_SHAPES: dict[str, dict[str, int | str]] = {
    name: {"generator": name, "latent_dim": d, "ngf": f, "channels": c, "image_size": s, "K": k}
    for name, (d, f, c, s, k) in _SHAPES.items()
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
assert tuple(DTYPES) == PRECISIONS, "a dtype per precision of lsnf.config"


def interleaved_min(
    fns: list[Callable[[], object]],
    blocks: int,
    burn_in: bool = True,
    sync: Callable[[], object] | None = None,
) -> list[float]:
    """Time several functions in alternation, block after block (the same conditions for
    all); the minimum per function. ``sync`` (e.g. ``torch.cuda.synchronize``) runs before
    each clock read, so queued GPU work is timed where it was queued."""
    wait = sync or (lambda: None)
    if burn_in:
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(blocks):
        for i, fn in enumerate(fns):
            wait()
            t = time.perf_counter()
            fn()
            wait()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def device_sync(device: torch.device) -> Callable[[], object] | None:
    """What makes a clock read after queued work on ``device`` honest: CUDA's synchronize (its
    kernels run asynchronously), nothing on a CPU."""
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def count_flops(fn: Callable[[], object]) -> int:
    """The FLOPs of the matmuls and convolutions that ``fn`` runs (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@contextlib.contextmanager
def _autocast(precision: str, device_type: str) -> Iterator[None]:
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        yield


def _gemm_fn(
    precision: str, device: torch.device, n: int = 2048
) -> tuple[Callable[[], object], float]:
    """An n x n x n matrix multiply in ``precision`` and its FLOPs (the hardware's best case;
    on a GPU 2048^3 may not fill it, so the ceiling is the best of this and the layers)."""
    a, b = (torch.randn(n, n, dtype=DTYPES[precision], device=device) for _ in range(2))
    return (lambda: a @ b), 2.0 * n**3


def layer_inputs(model: LatentModel, z: Tensor) -> list[tuple[nn.Module, Tensor]]:
    """Every convolution / linear layer of the generator with the input it sees at ``z``."""
    seen: list[tuple[nn.Module, Tensor]] = []
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    hooks = [
        m.register_forward_hook(lambda m, args, out: seen.append((m, args[0].detach())))
        for m in model.generator.modules()
        if isinstance(m, layers)
    ]
    try:
        with torch.no_grad():
            model.generator(z)
    finally:
        for h in hooks:
            h.remove()
    return seen


def layer_fns(model: LatentModel, z: Tensor, precision: str) -> list[Callable[[], object]]:
    """Per convolution / linear layer of the generator, two functions that run it alone at the
    step's shapes in ``precision``: its forward, and its forward with the input-gradient (what
    a Langevin step runs of it). Call them with the layers frozen."""
    fns: list[Callable[[], object]] = []
    kind = z.device.type
    for layer, inp in layer_inputs(model, z):
        x = inp.clone().requires_grad_(True)
        with _autocast(precision, kind), torch.no_grad():
            upstream = torch.ones_like(layer(x))  # made once, outside the timed calls

        def forward(layer: nn.Module = layer, x: Tensor = x) -> None:
            with _autocast(precision, kind), torch.no_grad():
                layer(x)

        def input_grad(layer: nn.Module = layer, x: Tensor = x, up: Tensor = upstream) -> None:
            with _autocast(precision, kind):
                out = layer(x)
            x.grad = None  # backward(), not autograd.grad(): FlopCounterMode must see it
            out.backward(up)

        fns += [forward, input_grad]
    return fns


def research_copy(model: LatentModel) -> LatentModel:
    """The model as the authors' code runs it: NCHW, and torch's own transposed convolution
    (no patch projection, lsnf.core.generators.project_patches) in every layer."""
    research = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with_torch_layers(research)
    return research


def straightforward_steps(
    model: LatentModel, x: Tensor, z0: Tensor, steps: int, s: float, rng: torch.Generator
) -> Tensor:
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
        return count_flops(lambda: model.energy(z, x).sum().backward())


def _dispatched_ops(fn: Callable[[], object]) -> int:
    """Non-view aten operators that ``fn`` dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            Count.n += not func.is_view
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def ops_per_step(cfg: RunConfig, batch_size: int) -> int:
    """Non-view aten operators of one posterior Langevin step of ``cfg``'s model (training
    mode, noise on): the count of 2 steps minus that of 1 (module docstring)."""
    torch.manual_seed(0)
    model = build_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    c, s = cfg.model.channels, cfg.model.image_size
    x = torch.rand(batch_size, c, s, s, generator=g) * 2 - 1  # (B, C, H, W)
    z0 = torch.randn(batch_size, cfg.model.latent_dim, generator=g)  # (B, d)

    def steps(k: int) -> int:
        rng = torch.Generator().manual_seed(1)
        return _dispatched_ops(lambda: infer_posterior(model, x, k, 0.1, True, rng, z0=z0))

    return steps(2) - steps(1)


def _print_ops(shapes: list[str], batch_size: int) -> None:
    from lsnf.config import PRIOR_KINDS

    print(f"ops/step (non-view aten ops of one posterior Langevin step, batch {batch_size}):")
    print(f"{'shape':9} " + " ".join(f"{p:>9}" for p in PRIOR_KINDS))
    for name in shapes:
        shape = {k: v for k, v in PAPER_SHAPES[name].items() if k != "K"}
        counts = [
            ops_per_step(config_from_dict({"model": shape, "prior": {"kind": p}}), batch_size)
            for p in PRIOR_KINDS
        ]
        print(f"{name:9} " + " ".join(f"{n:9d}" for n in counts), flush=True)


def _shape_config(shape: dict[str, int | str], precision: str) -> RunConfig:
    return config_from_dict({"model": shape, "prior": {"kind": "flow"}, "precision": precision})


def bench_shape(
    name: str,
    precisions: tuple[str, ...],
    batch_size: int,
    blocks: int,
    steps_per_block: int,
    device: torch.device | None = None,
) -> list[dict[str, float]]:
    """One shape in every precision, on ``device`` (default CPU): step and iteration times,
    ours over the straightforward form, the step's FLOPs, each precision's ceiling, and the
    layers-only bound.

    Everything is timed interleaved, block after block, each keeping its minimum: the step of
    every precision, the research form, the GEMM and every layer alone (then the learning
    iterations, likewise). A shared machine's speed drifts by tens of percent within a minute;
    a ceiling or an fp32 step timed at another moment would skew the ratios.
    """
    device = device or torch.device("cpu")
    sync = device_sync(device)
    shape = dict(PAPER_SHAPES[name])
    k = int(shape.pop("K"))
    g = torch.Generator().manual_seed(0)
    c, sz = int(shape["channels"]), int(shape["image_size"])
    x = (torch.rand(batch_size, c, sz, sz, generator=g) * 2 - 1).to(device)  # (B, C, H, W)
    z0 = torch.randn(batch_size, int(shape["latent_dim"]), generator=g).to(device)  # (B, d)
    rng = torch.Generator(device).manual_seed(1)
    models = [  # the same seed, so the same parameters in every precision
        build_model(_shape_config(shape, p)).to(device).train() for p in precisions
    ]

    groups: list[list[Callable[[], object]]] = []  # per precision: ours, research, GEMM, layers
    work: list[list[float]] = []  # per precision: FLOPs of the GEMM and of each layer function
    for model, precision in zip(models, precisions, strict=True):
        research = research_copy(model)
        gemm, gemm_flops = _gemm_fn(precision, device)
        layers = layer_fns(model, z0, precision)
        with frozen(model):
            work.append([gemm_flops, *(count_flops(fn) for fn in layers)])
        groups.append(
            [
                lambda m=model: infer_posterior(m, x, steps_per_block, 0.1, True, rng, z0=z0),
                lambda r=research: straightforward_steps(r, x, z0, steps_per_block, 0.1, rng),
                gemm,
                *layers,
            ]
        )
    with frozen(*models):
        times = iter(interleaved_min([fn for group in groups for fn in group], blocks, sync=sync))
    iterations = []
    for model in models:
        opt_g = torch.optim.Adam(model.generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
        opt_p = torch.optim.Adam(model.prior.parameters(), lr=1e-4, betas=(0.5, 0.999))
        iterations.append(
            lambda m=model, og=opt_g, op=opt_p: learning_iteration(m, x, og, op, k, 0.1, rng)
        )
    t_iters = interleaved_min(iterations, blocks=2, burn_in=False, sync=sync)  # warm; K steps
    step_flops = _step_flops(models[0], x, z0)  # the same work in every precision

    rows = []
    for precision, group, (gemm_flops, *layer_flops), t_iter in zip(
        precisions, groups, work, t_iters, strict=True
    ):
        t_ours, t_naive, t_gemm, *t_layers = (next(times) for _ in group)
        layer_ceiling = max(f / t for f, t in zip(layer_flops, t_layers, strict=True))
        rows.append(
            {
                "shape": name,
                "precision": precision,
                "K": k,
                "step_s": t_ours / steps_per_block,
                "naive_step_s": t_naive / steps_per_block,
                "iter_s": t_iter,
                "flops": step_flops,
                "gemm": gemm_flops / t_gemm,
                "ceiling": max(gemm_flops / t_gemm, layer_ceiling),
                "layer_ceiling": layer_ceiling,
                "layers_s": sum(t_layers[1::2]),  # every layer's forward + input-gradient, alone
                "layers_flops": sum(layer_flops[1::2]),
            }
        )
    return rows


def _print_machine(device: torch.device) -> None:
    from lsnf.hardware import describe

    m = describe()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(
            f"device: {device} = {props.name}, {props.total_memory / 2**30:.0f} GiB, "
            f"{props.multi_processor_count} SMs, compute capability {props.major}.{props.minor}; "
            f"torch CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; "
            f"timed with torch.cuda.synchronize around each call"
        )
    flags = " ".join(f"{f}{'+' if on else '-'}" for f, on in m["flags"].items())
    print(f"machine: {m['cpu']}; {flags}; native bf16: {'yes' if m['native_bf16'] else 'NO'}")
    print(
        f"torch {m['torch']}: CPU capability {m['cpu_capability']}, {m['threads']} threads, "
        f"oneDNN {'on' if m['mkldnn'] else 'off'}, MKL {'on' if m['mkl'] else 'off'}, "
        f"CUDA {m['cuda'] or 'none'}"
    )


def run_bench(
    shapes: list[str],
    batch_size: int,
    blocks: int,
    steps_per_block: int,
    precisions: tuple[str, ...] = PRECISIONS,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Run and print the benchmark for each named shape and precision on ``device``; return the
    raw figures (torch's thread count is the caller's: ``lsnf --threads N bench``)."""
    from lsnf.hardware import resolve_device

    unknown = [s for s in shapes if s not in PAPER_SHAPES]
    if unknown:
        raise UserError(f"unknown shapes {unknown}; choose from {sorted(PAPER_SHAPES)}")
    target = resolve_device(device)
    _print_machine(target)
    _print_ops(shapes, batch_size)
    print(
        f"batch {batch_size}, burn-in 1 block, min over {blocks} interleaved blocks of "
        f"{steps_per_block} steps"
    )
    cols = [
        "step img/s",
        "% ceiling",
        "layers %",
        "ceiling GF/s",
        "GEMM GF/s",
        "ours/naive",
        "iter img/s",
    ]
    print(f"{'shape':9} {'prec':4} " + " ".join(f"{c:>12}" for c in cols) + f" {'vs fp32':>8}")
    rows = []
    for name in shapes:
        shape_rows = bench_shape(name, precisions, batch_size, blocks, steps_per_block, target)
        fp32_step = next((r["step_s"] for r in shape_rows if r["precision"] == "fp32"), None)
        for r in shape_rows:
            r["speedup"] = fp32_step / r["step_s"] if fp32_step else float("nan")
            values = [
                batch_size / r["step_s"],
                100 * r["flops"] / r["step_s"] / r["ceiling"],
                100 * r["layers_flops"] / r["layers_s"] / r["ceiling"],
                r["ceiling"] / 1e9,
                r["gemm"] / 1e9,
                r["naive_step_s"] / r["step_s"],
                batch_size / r["iter_s"],
                r["speedup"],
            ]
            formats = ("12.1f", "12.1f", "12.1f", "12.0f", "12.0f", "12.2f", "12.1f", "7.2f")
            cells = " ".join(f"{v:{f}}" for v, f in zip(values, formats, strict=True))
            print(f"{name:9} {r['precision']:4} {cells}x", flush=True)
        rows += shape_rows
    print(
        "% ceiling: the step's useful FLOP/s over the ceiling: the best of a 2048^3 GEMM and "
        "the generator's own layers (forward, input-gradient), timed in the same blocks.\n"
        "layers %: the generator's layers alone (forward + input-gradient, each at the "
        "step's shapes, summed) over the same ceiling: the most the step could reach if "
        "nothing else (prior, BatchNorm, activations, energy) took time.\n"
        "ours/naive: our step (one gradient call, frozen parameters, NHWC, patch projection) over "
        "the research-code form (two gradient calls, NCHW, torch's layers); >= 1 is the target.\n"
        "vs fp32: the step's speedup over the fp32 step of the same shape, same blocks."
    )
    return rows
