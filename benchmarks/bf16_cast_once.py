"""A/B: a bf16 posterior Langevin step whose generator weights autocast casts at every decode
(LatentModel.decode) against weights cast once per inference call (LatentModel.frozen_decode,
docs/method.md §5.4); the same folded prior; batch 100, one thread, blocks of 10 steps."""

from __future__ import annotations

import torch
from _common import batch, paper_model

from lsnf.bench import interleaved_min
from lsnf.core.langevin import frozen, langevin, posterior_energy
from lsnf.core.model import LatentModel, batchnorm_statistics_kept

K = 10


def compare(model: LatentModel) -> tuple[float, float]:
    x, z0 = batch(model, 100)

    def run(once: bool) -> None:
        with frozen(model), batchnorm_statistics_kept(model), torch.enable_grad():
            prior = model.prior.frozen_neg_log_prob()
            decode = model.frozen_decode() if once else model.decode
            energy = lambda z: posterior_energy(z, x, decode, prior, model.sigma)
            langevin(z0, energy, K, 0.1, True, torch.Generator().manual_seed(1))

    t_every, t_once = interleaved_min([lambda: run(False), lambda: run(True)], 7)
    return t_every / K * 1e3, t_once / K * 1e3


if __name__ == "__main__":
    torch.set_num_threads(1)
    for shape in ("mnist", "svhn"):
        a, b = compare(paper_model(shape, precision="bf16"))
        print(
            f"{shape:6} bf16: cast every step {a:.2f} ms/step, cast once {b:.2f} ms/step, "
            f"speed-up {a / b:.2f}x",
            flush=True,
        )
