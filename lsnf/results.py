"""One JSON file per result: the value and everything needed to trace it to a run.

Fields: metric, value, n, dataset, data (source, split, protocol, held-out digit, ...), model
(prior, generator), seed, the SHA-256 of the resolved run config, checkpoint path and SHA-256,
lsnf version, time, plus what the
evaluation adds (inference settings, feature extractor, mask, ...). The JSON files are the
source of truth; MLflow and the tables copy them. :func:`save_outcome` writes an evaluation's
result and its grid.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsnf import __version__
from lsnf.io import atomic_write_json

if TYPE_CHECKING:
    from torch import Tensor

    from lsnf.checkpoint import TrainedModel

__all__ = ["Grid", "Outcome", "make_result", "save_outcome"]


def make_result(
    metric: str,
    value: float,
    n: int,
    trained: TrainedModel,
    data_meta: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a result record (see module docstring)."""
    cfg = trained.config
    record: dict[str, Any] = {
        "metric": metric,
        "value": value,
        "n": n,
        "dataset": data_meta.get("dataset"),
        "data": data_meta,
        "model": {
            "prior": cfg.prior.kind,
            "generator": cfg.model.generator,
            "latent_dim": cfg.model.latent_dim,
            "sigma": cfg.model.sigma,
        },
        "seed": cfg.seed,
        "config_sha256": cfg.digest(),
        "checkpoint": str(trained.path),
        "checkpoint_sha256": trained.sha256,
        "lsnf_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record


@dataclass(frozen=True)
class Grid:
    """Images (N, C, H, W) in [-1, 1] to save as one PNG, ``nrow`` per row."""

    images: Tensor
    nrow: int


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced: its result record (None for a grid-only evaluation), an
    optional grid and a one-line summary for the terminal."""

    record: dict[str, Any] | None
    grid: Grid | None
    summary: str


def save_outcome(outcome: Outcome, out: str | Path | None, grid: str | Path | None) -> list[Path]:
    """Write the record to ``out`` (atomically) and the grid to ``grid``, each when both the
    path and the content exist; return the files written."""
    written = []
    if out is not None and outcome.record is not None:
        atomic_write_json(out, outcome.record)
        written.append(Path(out))
    if grid is not None and outcome.grid is not None:
        from lsnf.metrics.grids import save_grid

        save_grid(outcome.grid.images, grid, nrow=outcome.grid.nrow)
        written.append(Path(grid))
    return written
