"""One JSON file per result: the value and everything needed to trace it to a run.

Fields: evaluation (its name in lsnf.evaluation.registry), value (and the evaluation's other
values), n, dataset, data (source, split, protocol, held-out digit, ..., SHA-256 of the images),
model (prior, generator), seed, precision (and TF32), the SHA-256 of the resolved run config,
checkpoint path and SHA-256, how the model was trained (``training``: epochs, iterations, the
selected parameters and the convergence status, docs/method.md §6.5), lsnf version, the git commit
of lsnf's source and whether it had uncommitted changes (:func:`stamp`), time, plus what the
evaluation adds (inference settings, feature extractor, mask, ...), and its ``identity``
(experiment, run, prior, seed, held-out digit, mask: :func:`identify`), by which the tables group
results. The JSON files are the source of truth; MLflow and the tables copy them.
:func:`save_outcome` writes an evaluation's result and its grid. A model that failed to train gets
results too, with no values and the reason (``failed``: :func:`failed_outcome`, docs/method.md
§6.7).

Beside each JSON, its **per-example values** (``examples`` in the record: file name and
SHA-256), from which a table cell, its interval and a paired comparison are recomputed without
rerunning inference (:func:`read_examples`):

- Parquet (``<name>.examples.parquet``) for per-example tables (anomaly: score, label, ink;
  reconstruction: error at each K_test read; inpainting and recovery: one row per image and
  completion). Parquet is what a pandas user opens with ``pd.read_parquet``: typed, named
  columns, compressed, readable from R, Spark or DuckDB alike.
- ``.npz`` (``fid.features.npz``) for FID, whose "examples" are not rows: the generated set's
  feature mean (F,) and covariance (F, F) and the bootstrap replicates of the FID, arrays that
  numpy opens with ``np.load``.
"""

from __future__ import annotations

import datetime as _dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsnf import __version__, layout
from lsnf.config import holds_out_a_digit
from lsnf.io import atomic_write_json

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from torch import Tensor

    from lsnf.config import RunConfig
    from lsnf.evaluation.registry import Evaluation
    from lsnf.training.checkpoint import FailedModel, TrainedModel

__all__ = [
    "Grid",
    "Outcome",
    "check_identity",
    "failed_outcome",
    "identify",
    "make_result",
    "model_identity",
    "read_examples",
    "save_outcome",
    "source_revision",
    "stamp",
]


def make_result(
    evaluation: str,
    value: float,
    n: int,
    trained: TrainedModel | FailedModel,
    data_meta: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a result record (see module docstring); a model that failed to train has value
    None, n 0 and its ``failed`` reason (:func:`failed_outcome`)."""
    cfg = trained.config
    record: dict[str, Any] = {
        "evaluation": evaluation,
        "value": value,
        "n": n,
        "dataset": data_meta.get("dataset"),
        "data": data_meta,
        "model": {
            "prior": cfg.model_kind,
            "generator": cfg.model.generator,
            "latent_dim": cfg.model.latent_dim,
            "sigma": cfg.model.sigma,
        },
        "seed": cfg.seed,
        "precision": cfg.precision,
        "tf32": cfg.tf32,
        **_compiled(cfg.compile),
        "config_sha256": cfg.digest(),
        "checkpoint": str(trained.path),
        "checkpoint_sha256": trained.sha256,
        "training": trained.training,
        **stamp(),
    }
    record.update(extra)
    return record


def _compiled(compiled: bool) -> dict[str, Any]:
    """Whether the Langevin energies were compiled, and this process's compile time then."""
    if not compiled:
        return {"compile": False}
    from lsnf.core.model import compile_seconds

    return {"compile": True, "compile_s": compile_seconds()}


def model_identity(run_key: str | None, cfg: RunConfig) -> dict[str, Any]:
    """Who a model is: the experiment and run of ``run_key`` (``{experiment}/{run}``, as the
    workflow's ``--run-key`` gives it; None when not given), its prior and seed, its held-out
    digit (anomaly protocol) and the corruption it learned from (recovery). The one place a run
    key becomes fields: its results (:func:`identify`) and its MLflow run's tags
    (:func:`lsnf.tracking.log.run_tags`) read them from here."""
    experiment, _, run = (run_key or "").partition("/")
    corruption = cfg.data.corruption
    return {
        "experiment": experiment or None,
        "run": run or None,
        "prior": cfg.model_kind,
        "seed": cfg.seed,
        "held_out_digit": (
            cfg.data.held_out_digit
            if holds_out_a_digit(cfg.data.protocol, cfg.data.source)
            else None
        ),
        "mask": None if corruption is None else corruption.tag,
    }


def identify(record: dict[str, Any], run_key: str | None, cfg: RunConfig) -> dict[str, Any]:
    """``record`` with its ``identity``: the model's (:func:`model_identity`), whose mask is
    the result's own (the mask of an inpainting result, the corruption of a recovery result;
    None for any other). The tables group results by it alone."""
    from lsnf.config import MaskSpec

    mask = record.get("mask")
    identity = {**model_identity(run_key, cfg), "mask": MaskSpec(**mask).tag if mask else None}
    return {**record, "identity": identity}


def check_identity(path: str | Path, record: dict[str, Any]) -> None:
    """Refuse a result whose ``identity`` (by which the tables group it) disagrees with what else
    it records: the model's prior and seed (from the checkpoint's config), its held-out digit,
    its run id (:mod:`lsnf.run_ids`, when the run id has that form), and the experiment and run
    in the paths of the file itself and of its checkpoint (:func:`lsnf.layout.run_key_in`)."""
    from lsnf.errors import UserError
    from lsnf.run_ids import parse_run, run_key

    who = record.get("identity") or {}
    key = run_key(str(who.get("experiment")), str(who.get("run")))
    data = record.get("data", {})
    checks = [  # (what, recorded, the identity's)
        ("the model's prior", record.get("model", {}).get("prior"), who.get("prior")),
        ("the model's seed", record.get("seed"), who.get("seed")),
    ]
    if holds_out_a_digit(data.get("protocol"), data.get("source")):
        checks.append(("the held-out digit", data.get("held_out_digit"), who.get("held_out_digit")))
    try:
        run = parse_run(str(who.get("run")))
        checks += [("the run id's prior", run.prior, who.get("prior")),
                   ("the run id's seed", run.seed, who.get("seed"))]  # fmt: skip
        if run.digit is not None:
            checks.append(("the run id's digit", run.digit, who.get("held_out_digit")))
    except ValueError:  # a run key given to `lsnf eval` by hand: nothing to parse
        pass
    for where, place in (("file", str(path)), ("checkpoint", str(record.get("checkpoint")))):
        if (in_path := layout.run_key_in(place)) is not None:
            checks.append((f"the {where}'s folder", in_path, key))
    wrong = [f"{what} is {got!r}, not {want!r}" for what, got, want in checks if got != want]
    if wrong:
        raise UserError(
            f"{path}: its identity ({key}, prior {who.get('prior')!r}, seed {who.get('seed')!r}) "
            f"disagrees with the result it labels: {'; '.join(wrong)}. The file was edited or "
            f"copied from another run: restore it, or rerun that evaluation"
        )


def stamp() -> dict[str, Any]:
    """What wrote a record and when: lsnf version, the git commit of its source and whether that
    source had uncommitted changes (None, None outside a git checkout: an installed wheel), and
    UTC time."""
    now = _dt.datetime.now(_dt.timezone.utc)
    commit, dirty = source_revision()
    return {
        "lsnf_version": __version__,
        "lsnf_commit": commit,
        "lsnf_dirty": dirty,
        "created": now.isoformat(timespec="seconds"),
    }


@functools.cache
def source_revision() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout that holds this lsnf's source, once per process; dirty:
    a tracked file differs from the commit. (None, None) when the source is not the top of a git
    checkout, or git is missing."""
    import subprocess

    from lsnf.shipped import CHECKOUT as top

    git = ["git", "-C", str(top)]
    try:
        root = subprocess.run([*git, "rev-parse", "--show-toplevel"], capture_output=True,
                              text=True, timeout=10)  # fmt: skip
        if root.returncode != 0 or Path(root.stdout.strip()).resolve() != top:
            return None, None
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()  # fmt: skip
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, bool(status.stdout.strip())


@dataclass(frozen=True)
class Grid:
    """Images (N, C, H, W) in [-1, 1] to save as one PNG, ``nrow`` per row."""

    images: Tensor
    nrow: int


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced: its result record (None for a grid-only evaluation), an
    optional grid, a one-line summary for the terminal and its per-example values (a
    DataFrame, or FID's arrays)."""

    record: dict[str, Any] | None
    grid: Grid | None
    summary: str
    examples: pd.DataFrame | dict[str, np.ndarray] | None = None


def _write_examples(path: Path, examples: pd.DataFrame | dict[str, np.ndarray]) -> None:
    from lsnf.io import atomic_write_bytes

    if path.suffix == ".parquet":
        atomic_write_bytes(path, lambda fh: examples.to_parquet(fh, index=False))
    else:
        import numpy as np

        atomic_write_bytes(path, lambda fh: np.savez(fh, **examples))


def read_examples(result_path: str | Path, record: dict[str, Any] | None = None) -> Any:
    """The per-example values of the result at ``result_path``, checked against the SHA-256
    its record holds: a DataFrame (Parquet) or a dict of arrays (``.npz``)."""
    from lsnf.errors import UserError
    from lsnf.io import read_json, sha256

    result_path = Path(result_path)
    record = record if record is not None else read_json(result_path)
    ref = record.get("examples")
    if ref is None:
        raise UserError(
            f"{result_path} names no per-example file: it was written by an older "
            f"lsnf; rerun its evaluation"
        )
    path = result_path.parent / ref["file"]
    if not path.is_file() or sha256(path) != ref["sha256"]:
        raise UserError(
            f"{path} is missing or is not the file {result_path} was computed with "
            f"(SHA-256 differs); rerun that evaluation"
        )
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path)
    import numpy as np

    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def failed_outcome(ev: Evaluation, failed: FailedModel, settings: Any) -> Outcome:
    """What evaluation ``ev`` writes for a model that failed to train (docs/method.md §6.7): a
    result with no values, its ``failed`` reason and what the tables group it by (identity,
    dataset; the extractor or mask of its condition), an empty per-example file, and a blank
    grid in place of images."""
    import pandas as pd
    import torch

    extra: dict[str, Any] = {"failed": failed.failure.to_dict()}
    extra |= {v.column: None for v in ev.values if v.column != "value"}
    if ev.condition == "mask":
        mask = settings.mask if ev.per_mask else failed.config.data.corruption
        extra["mask"] = None if mask is None else mask.model_dump(mode="json")
    if ev.condition == "extractor" and settings.fid is not None:
        extra["feature_extractor"] = {"name": settings.fid.extractor}
    record = make_result(ev.name, None, 0, failed, failed.data, **extra) if ev.result else None
    examples = ({} if ev.arrays else pd.DataFrame()) if ev.result else None
    m = failed.config.model
    grid = Grid(torch.zeros(1, m.channels, m.image_size, m.image_size), 1) if ev.grid else None
    summary = f"{ev.name}: no values, the model failed to train ({failed.failure.text()})"
    return Outcome(record, grid, summary, examples)


def save_outcome(outcome: Outcome, out: str | Path | None, grid: str | Path | None) -> list[Path]:
    """Write the record to ``out`` (atomically; its per-example file first, so a result JSON
    never exists without it) and the grid to ``grid``, each when both the path and the content
    exist; return the files written."""
    from lsnf.io import sha256

    written = []
    if out is not None and outcome.record is not None:
        record = outcome.record
        if outcome.examples is not None:
            arrays = isinstance(outcome.examples, dict)
            path = Path(layout.examples(str(out), arrays))
            _write_examples(path, outcome.examples)
            record = {**record, "examples": {"file": path.name, "sha256": sha256(path)}}
            written.append(path)
        atomic_write_json(out, record)
        written.append(Path(out))
    if grid is not None and outcome.grid is not None:
        from lsnf.metrics.grids import save_grid

        save_grid(outcome.grid.images, grid, nrow=outcome.grid.nrow)
        written.append(Path(grid))
    return written
