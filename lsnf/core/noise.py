"""Sources of standard normal draws (docs/method.md §5.3, "Batch-independent evaluation").

Learning draws z0 and Langevin noise for a mini-batch from one ``torch.Generator``. Evaluation
draws them from :class:`ExampleNoise` instead: every example of a split has its place in a
stream of its own block of ``BLOCK`` consecutive examples, seeded from (evaluation seed, block),
so what an example gets does not depend on the batch it is inferred in, on the batch size or on
how the split is sharded. Every consumer of randomness (z0, Langevin noise, prior samples, the
latent EBM's prior Langevin) takes either kind through :func:`standard_normal`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["BLOCK", "ExampleNoise", "RandomSource", "standard_normal"]

BLOCK = 256  # examples per stream: a batch of B draws B + up to 2·(BLOCK - 1) rows per call


def _block_seed(seed: int, block: int) -> int:
    """A 63-bit seed for ``block`` of an evaluation with ``seed``, well mixed (numpy's
    SeedSequence), so neighbouring blocks and seeds give unrelated streams."""
    state = np.random.SeedSequence([seed % 2**64, block]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


class ExampleNoise:
    """Normal draws for examples ``start .. stop - 1`` of a split, each from its block's stream.

    Each call of :meth:`normal` draws one ``(BLOCK, cols)`` matrix from the stream of every block
    that the examples touch and keeps their rows: example ``i`` always gets row ``i % BLOCK`` of
    its block's draw, so two objects over different ranges agree on the examples they share as
    long as they are asked for the same sequence of draws (the same inference settings).
    """

    def __init__(self, seed: int, start: int, stop: int, device: torch.device | str) -> None:
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got {start}, {stop}")
        self.start, self.stop, self.device = start, stop, torch.device(device)
        first, last = start // BLOCK, (stop - 1) // BLOCK
        self._offset = start - first * BLOCK
        self._streams = [
            torch.Generator(device=self.device).manual_seed(_block_seed(seed, b))
            for b in range(first, last + 1)
        ]

    def __len__(self) -> int:
        return self.stop - self.start

    def normal(self, cols: int, dtype: torch.dtype) -> Tensor:
        """The next draw, (stop - start, cols)."""
        blocks = [
            torch.randn(BLOCK, cols, generator=g, device=self.device, dtype=dtype)
            for g in self._streams
        ]  # each (BLOCK, cols)
        rows = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
        return rows[self._offset : self._offset + len(self)]  # (n, cols)


RandomSource = torch.Generator | ExampleNoise | None


def standard_normal(
    shape: tuple[int, int], source: RandomSource, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """``N(0, I)`` draws of ``shape`` (rows, cols) from a generator (or torch's global one) or,
    row by row, from an :class:`ExampleNoise` with as many examples as rows."""
    if isinstance(source, ExampleNoise):
        if shape[0] != len(source):
            raise ValueError(f"{len(source)} examples' noise asked for {shape[0]} rows")
        return source.normal(shape[1], dtype).to(device)
    return torch.randn(shape, generator=source, device=device, dtype=dtype)
