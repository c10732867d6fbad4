"""A/B: the flow prior alone, -log p(z) and its z-gradient (batch 100, one thread): autograd
through the lsnf.core.flow modules against FoldedFlow (docs/method.md §2.6), 50 calls a block."""

from __future__ import annotations

import torch

from lsnf.bench import interleaved_min
from lsnf.core.flow import FoldedFlow, GlowVectorFlow

CALLS = 50


def compare(d: int) -> tuple[float, float]:
    flow = GlowVectorFlow(d).requires_grad_(False)
    folded = FoldedFlow(flow)
    z = torch.randn(100, d, generator=torch.Generator().manual_seed(0))  # (B, d)

    def grad_of(fn) -> None:  # type: ignore[no-untyped-def]
        for _ in range(CALLS):
            zz = z.clone().requires_grad_(True)
            torch.autograd.grad(fn(zz).sum(), zz)

    t_unfolded, t_folded = interleaved_min(
        [lambda: grad_of(lambda v: -flow.log_prob(v)), lambda: grad_of(folded.neg_log_prob)], 7
    )
    return t_unfolded / CALLS * 1e3, t_folded / CALLS * 1e3


if __name__ == "__main__":
    torch.set_num_threads(1)
    for d in (20, 100):
        a, b = compare(d)
        print(
            f"d={d}: prior value + z-gradient, unfolded {a:.3f} ms, folded {b:.3f} ms, "
            f"{a / b:.2f}x",
            flush=True,
        )
