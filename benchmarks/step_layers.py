"""Where a posterior Langevin step's time goes: each generator layer's forward and input-gradient
run alone at the step's shapes (lsnf.bench.layer_fns), against the whole step (flow prior,
training mode, batch 100, one thread), timed in the same interleaved blocks. What the layers do
not take (the prior, BatchNorm, activations, the energy, the update) is the most that any change
outside the layers' arithmetic can remove: 1 / (layers' share) bounds its speed-up."""

from __future__ import annotations

import sys

import torch
from _common import batch, paper_model

from lsnf.bench import count_flops, interleaved_min, layer_fns, layer_inputs
from lsnf.core.langevin import frozen
from lsnf.core.model import infer_posterior

STEPS = 10


def breakdown(shape: str, precision: str, blocks: int = 8) -> None:
    model = paper_model(shape, precision=precision)
    x, z0 = batch(model, 100)
    names = [f"{type(m).__name__}{tuple(m.weight.shape)}" for m, _ in layer_inputs(model, z0)]
    layers = layer_fns(model, z0, precision)[1::2]  # forward + input-gradient, per layer
    rng = torch.Generator().manual_seed(1)
    with frozen(model):
        flops = [count_flops(fn) for fn in layers]
        step = lambda: infer_posterior(model, x, STEPS, 0.1, True, rng, z0=z0)
        t_step, *t_layers = interleaved_min([step, *layers], blocks)
    t_step /= STEPS
    print(f"{shape} {precision}: step {t_step * 1e3:.2f} ms", flush=True)
    for name, t, f in zip(names, t_layers, flops, strict=True):
        print(f"  {name:32} {t * 1e3:7.2f} ms {t / t_step:6.1%}  {f / t / 1e9:6.1f} GFLOP/s")
    share = sum(t_layers) / t_step
    print(f"  {'the rest':32} {(t_step - sum(t_layers)) * 1e3:7.2f} ms {1 - share:6.1%}")
    print(f"  -> outside the layers, at most {1 / share:.2f}x faster per step", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    shapes = sys.argv[1:] or ["mnist", "svhn"]
    for shape in shapes:
        for precision in ("fp32", "bf16"):
            breakdown(shape, precision)
