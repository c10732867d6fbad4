"""One JSON file per result: the value and everything needed to trace it to a run.

Fields: metric, value, n, dataset, data source, split, protocol (and held-out digit), model
(prior, generator), inference settings, feature extractor (FID), seed, checkpoint path and
SHA-256, lsnf version, time. The JSON files are the source of truth; trackers copy them.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from lsnf import __version__
from lsnf.checkpoint import atomic_write_json, sha256
from lsnf.config import RunConfig

__all__ = ["make_result", "read_result", "write_result"]


def make_result(
    metric: str,
    value: float,
    n: int,
    cfg: RunConfig,
    data_meta: dict[str, Any],
    checkpoint: str | Path,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a result record (see module docstring)."""
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
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256(checkpoint),
        "lsnf_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record.update(extra)
    return record


def write_result(path: str | Path, record: dict[str, Any]) -> None:
    """Write atomically: a half-written result never stands under the real name."""
    atomic_write_json(path, record)


def read_result(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
