"""MLflow logging of what is on disk: :func:`log_evaluations`, the workflow's one job that logs
every evaluation's outputs (evaluation jobs do not open MLflow: its import and store set-up were
most of a small job's cost, docs/results.md "Per-job fixed cost"); :func:`sync`, which logs
everything on disk as the jobs would have; and the failures a workflow run reports when it
ends."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsnf import layout
from lsnf.run_ids import run_key
from lsnf.tracking.log import (
    log_outcome,
    log_run_config,
    log_training_end,
    log_training_metrics,
    open_tracker,
)
from lsnf.tracking.store import Tracker

if TYPE_CHECKING:
    from lsnf.config import RunConfig

__all__ = ["failure_report", "failures_since", "log_evaluations", "sync"]


def failures_since(path: str | Path, offset: int = 0) -> list[dict[str, Any]]:
    """Tracking failures appended to ``path`` after byte ``offset`` (a workflow's start)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a killed job: still a failure
            out.append({"run_key": "?", "what": "?", "error": line[:200], "uri": "?"})
    return out


def failure_report(path: str | Path, offset: int = 0) -> str:
    """A summary of this workflow run's tracking failures ('' when there were none)."""
    failures = failures_since(path, offset)
    if not failures:
        return ""
    uris = sorted({f.get("uri", "?") for f in failures})
    jobs = [f for f in failures if f.get("run_key")]
    store = " and when creating the store" if len(jobs) < len(failures) else ""
    lines = [
        f"[lsnf] MLflow tracking failed in {len(jobs)} job(s){store} (store: {', '.join(uris)}). "
        f"Their result files are on disk, and the tables are built from those; their MLflow "
        f"logging is missing. Details: {path}"
    ]
    lines += [
        f"  {f.get('run_key') or '(store)'}: {f.get('what', '?')}: {f.get('error', '?')}"
        for f in failures
    ]
    return "\n".join(lines)


def sync(results_dir: str | Path, uri: str | None, experiment: str) -> str:
    """Log every model and result under ``results_dir`` into MLflow as the workflow's jobs do
    (training: config, epochs, dataset, artifacts, end; evaluations: metrics, dataset, files),
    for jobs whose logging failed or into a store created later, each run's results once they
    pass the tables' checks. Idempotent; afterwards MLflow's latest values are the files'."""
    from lsnf.errors import UserError
    from lsnf.evaluation.registry import EVALUATIONS

    if not uri:
        raise UserError("lsnf track sync needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    root = str(results_dir)
    runs = layout.runs_on_disk(root)
    if not runs:
        raise UserError(f"{root} holds no models/ or eval/ runs to sync")
    failed = []
    for exp, run in runs:
        identity, cfg = model_on_disk(exp, run, root)
        tracker = open_tracker(identity, uri, experiment, None)
        model_dir = Path(layout.model_dir(exp, run, root))
        if cfg is not None:
            log_run_config(tracker, cfg)
            log_training_metrics(tracker, model_dir)
            if (model_dir / layout.MODEL).is_file():
                log_training_end(tracker, model_dir)
        results = (  # the results themselves: their courses are in the tables, not in MLflow
            p
            for p in Path(layout.eval_dir(exp, run, root)).glob("*.json")
            if not layout.is_course_index(p.name)
        )
        grids = (  # the grids of evaluations without a result
            Path(layout.result(exp, run, f"{ev.stem}.png", root))
            for ev in EVALUATIONS.values()
            if not ev.result
        )
        _log_outputs(tracker, _verified([*results, *(g for g in grids if g.is_file())]))
        if tracker.disabled:
            failed.append(run_key(exp, run))
    if failed:
        raise UserError(
            f"MLflow logging failed for {len(failed)} of {len(runs)} runs "
            f"({', '.join(failed)}); see the warnings above, then sync again"
        )
    return f"[lsnf] synced {len(runs)} runs into {uri} (experiment {experiment})"


def model_on_disk(exp: str, run: str, root: str) -> tuple[dict[str, Any], RunConfig | None]:
    """(identity, resolved config) of the model ``models/EXP/RUN`` under ``root``: the identity
    (:func:`lsnf.evaluation.results.model_identity`) from that config, or only its experiment and
    run (and None) when the workflow has not written the config."""
    from lsnf.config import load_config
    from lsnf.evaluation.results import model_identity

    config = Path(layout.model_dir(exp, run, root), layout.CONFIG)
    if not config.is_file():
        return {"experiment": exp, "run": run}, None
    cfg = load_config(config)
    return model_identity(run_key(exp, run), cfg), cfg


def _verified(files: Iterable[Path]) -> list[Path]:
    """``files``, once every result JSON among them passes the checks the tables make
    (:func:`lsnf.analysis.replicates.verify_result`); otherwise a UserError naming each that fails,
    and nothing is logged: MLflow holds only what the tables would show."""
    from lsnf.analysis.replicates import verify_result
    from lsnf.errors import UserError

    files = list(files)
    refused = []
    for result in (f for f in files if f.suffix == ".json"):
        try:
            verify_result(result, json.loads(result.read_text()))
        except (UserError, KeyError, ValueError) as err:
            refused.append(f"  {err}" if isinstance(err, UserError) else f"  {result}: {err!r}")
    if refused:
        raise UserError(
            f"{len(refused)} result(s) fail the tables' checks, so none is logged to MLflow:\n"
            + "\n".join(refused)
        )
    return files


def _log_outputs(tracker: Tracker, files: Iterable[Path]) -> None:
    """Log one run's evaluation outputs as its evaluation jobs would: each result JSON with its
    metrics, per-example file and grid; each grid without a result JSON as a grid."""
    files = sorted(set(files))
    results = [f for f in files if f.suffix == ".json"]
    for result in results:
        record = json.loads(result.read_text())
        examples = result.with_name(record.get("examples", {}).get("file", result.name))
        paired = [examples, result, result.with_suffix(".png")]
        log_outcome(tracker, record, list(dict.fromkeys(f for f in paired if f.is_file())))
    with_result = {r.with_suffix("") for r in results}
    for grid in (f for f in files if f.suffix == ".png" and f.with_suffix("") not in with_result):
        log_outcome(tracker, None, [grid])


def log_evaluations(
    outputs: list[str | Path], uri: str, experiment: str, failure_log: str | Path | None
) -> str:
    """Log evaluation outputs (result JSONs and grids under ``eval/<experiment>/<run>/``) into
    their models' MLflow runs, one run after another in this one process, once every result has
    passed the tables' checks (:func:`_verified`: a UserError otherwise, before anything is
    logged). The logging is best effort, like a job's own: an MLflow failure is warned about
    and appended to ``failure_log`` (the workflow names it when it ends), never raised.
    Idempotent, and convergent: a value that differs from MLflow's latest is logged again."""
    by_run: dict[tuple[str, str, str], list[Path]] = {}
    for output in _verified(map(Path, outputs)):
        by_run.setdefault(layout.run_of_output(str(output)), []).append(output)
    failed = []
    fail_to = None if failure_log is None else Path(failure_log)
    for (exp, run, root), files in sorted(by_run.items()):
        tracker = open_tracker(model_on_disk(exp, run, root)[0], uri, experiment, fail_to)
        _log_outputs(tracker, files)
        if tracker.disabled:
            failed.append(run_key(exp, run))
    logged = len(by_run) - len(failed)
    return f"[lsnf] logged the evaluations of {logged} of {len(by_run)} runs into {uri}" + (
        f"; failed: {', '.join(failed)} (see {failure_log})" if failed else ""
    )
