"""What lsnf logs to MLflow (through :class:`lsnf.tracking.store.Tracker`, best effort).

One MLflow run per trained model, found again by its tag ``lsnf.run_key`` (e.g.
``mnist_anomaly/flow-digit1-seed0``) and tagged with its experiment, prior, seed, held-out digit
and mask (``lsnf.*``, for the UI's "Group by" and filters): training logs params (the resolved
config), per-epoch metrics, its training split as a dataset input and artifacts; every
evaluation logs its metrics (keys: :func:`lsnf.evaluation.registry.mlflow_metrics`), its test split
as a dataset input, and its result JSON, per-example file and grid into the same run, so ``mlflow
ui`` compares models side by side. Replaying files that are logged already logs nothing twice, so
:func:`lsnf.tracking.sync.sync` can replay the results on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsnf import layout
from lsnf.run_ids import run_key
from lsnf.tracking.store import Tracker

__all__ = [
    "dataset_input",
    "log_epoch",
    "log_outcome",
    "log_run_config",
    "log_training_end",
    "log_training_metrics",
    "open_tracker",
    "run_tags",
]


def run_tags(identity: dict[str, Any]) -> dict[str, str]:
    """Tags of a model's MLflow run from its identity
    (:func:`lsnf.evaluation.results.model_identity`): its key, experiment, run, prior, seed,
    held-out digit and mask, each that it has."""
    tags = {"lsnf.run_key": run_key(identity["experiment"], identity["run"])}
    return tags | {f"lsnf.{k}": str(v) for k, v in identity.items() if v is not None}


def dataset_input(meta: dict[str, Any], context: str) -> Any:
    """An MLflow dataset input for a data split's provenance (``ImageSplit.describe()``): name
    ``{dataset}/{split}[/digit{d}]``, digest = the first 16 hex digits of its images' SHA-256,
    source = the provenance as JSON, context ``training`` or ``evaluation``."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    name = f"{meta.get('dataset')}/{meta.get('split')}"
    if meta.get("held_out_digit") is not None:
        name += f"/digit{meta['held_out_digit']}"
    digest = str(meta.get("images_sha256", ""))[:16] or "unknown"
    source = json.dumps({k: v for k, v in meta.items() if k != "images_sha256"}, sort_keys=True)
    dataset = Dataset(
        name=name,
        digest=digest,
        source_type="lsnf",
        source=source,
        profile=json.dumps({"num_rows": meta.get("n")}),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def log_run_config(tracker: Tracker, cfg: Any) -> None:
    """A training run's resolved config (a :class:`lsnf.config.RunConfig`) as params,
    with its prior and dataset as tags."""
    tracker.log_params(
        cfg.to_dict(), tags={"lsnf.prior": cfg.model_kind, "lsnf.dataset": cfg.data.name}
    )


def log_outcome(tracker: Tracker, record: dict[str, Any] | None, files: list[Path]) -> None:
    """An evaluation's metrics (keys: :func:`lsnf.evaluation.registry.mlflow_metrics`), its test
    split as a dataset input, and its files (result JSON, per-example file; grids)."""
    if record is not None and "failed" in record:  # a model that failed to train: no values
        tracker.log_params(
            {}, tags={f"lsnf.failed.{record['evaluation']}": record["failed"]["text"]}
        )
    elif record is not None:
        from lsnf.evaluation.registry import mlflow_metrics

        tracker.log_metrics(mlflow_metrics(record), latest=True)  # MLflow shows the file's
        if "images_sha256" in record.get("data", {}):
            tracker.log_inputs([dataset_input(record["data"], "evaluation")])
    tracker.log_artifacts(list(files), subdir="results" if record is not None else "grids")


def log_training_end(tracker: Tracker, run_dir: Path) -> None:
    """A finished training run: its training split as a dataset input, its curves, resolved
    config and data provenance, and the run's end; a model that failed to train (its
    ``model.pt`` records the failure, docs/method.md §6.7) ends as a FAILED run tagged with
    ``lsnf.failed``, its reason."""
    from lsnf.training.checkpoint import failed_model

    data = run_dir / layout.DATA
    if data.is_file():
        tracker.log_inputs([dataset_input(json.loads(data.read_text()), "training")])
    tracker.log_artifacts([run_dir / layout.METRICS, run_dir / layout.CONFIG, data], "training")
    failed = failed_model(run_dir / layout.MODEL)
    if failed is not None:
        tracker.log_params({}, tags={"lsnf.failed": failed.failure.text()})
    tracker.set_terminated("FAILED" if failed is not None else "FINISHED")


def log_epoch(tracker: Tracker, epoch: int, stats: dict[str, float]) -> None:
    """Per-epoch training statistics, at step ``epoch`` (a ``fit`` callback)."""
    tracker.log_metrics(stats, step=epoch)


def log_training_metrics(tracker: Tracker, run_dir: Path) -> None:
    """Every epoch's statistics that the run directory ``run_dir`` holds, at step epoch (a
    2s-ABP run's: its ABP model's epochs, then the fit's)."""
    from lsnf.io import read_json_lines

    for row in read_json_lines(run_dir / layout.METRICS):
        log_epoch(tracker, int(row["epoch"]), row)


def open_tracker(
    identity: dict[str, Any], uri: str | None, experiment: str, failure_log: Path | None
) -> Tracker:
    """A tracker for the model of ``identity`` (:func:`run_tags`), or a clear error without a
    tracking URI."""
    if not uri:
        from lsnf.errors import UserError

        raise UserError("MLflow tracking needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    tags = run_tags(identity)
    return Tracker(uri, experiment, tags["lsnf.run_key"], failure_log=failure_log, tags=tags)
