"""A/B: one posterior Langevin step with the flow prior, folded (infer_posterior, docs/method.md
§2.6) against the unfolded flow (langevin on LatentModel.energy); batch 100, one thread, noise
on, interleaved blocks of 20 steps, the best block each."""

from __future__ import annotations

import torch
from _common import batch, paper_model

from lsnf.bench import interleaved_min
from lsnf.core.langevin import frozen, langevin
from lsnf.core.model import LatentModel, batchnorm_statistics_kept, infer_posterior

K = 20


def compare(model: LatentModel) -> tuple[float, float]:
    x, z0 = batch(model, 100)

    def folded() -> None:
        infer_posterior(model, x, K, 0.1, True, torch.Generator().manual_seed(1), z0=z0)

    def unfolded() -> None:
        energy = lambda z: model.energy(z, x)
        with frozen(model), batchnorm_statistics_kept(model), torch.enable_grad():
            langevin(z0, energy, K, 0.1, True, torch.Generator().manual_seed(1))

    t_unfolded, t_folded = interleaved_min([unfolded, folded], 7)
    return t_unfolded / K * 1e3, t_folded / K * 1e3


if __name__ == "__main__":
    torch.set_num_threads(1)
    for shape in ("mnist", "svhn"):
        for precision in ("fp32", "bf16"):
            a, b = compare(paper_model(shape, precision=precision))
            print(
                f"{shape:6} {precision}: unfolded {a:.2f} ms/step, folded {b:.2f} ms/step, "
                f"speed-up {a / b:.2f}x",
                flush=True,
            )
