"""MLflow logging that went missing: the failures a workflow run reports when it ends, and
:func:`sync`, which logs the results on disk as the jobs would have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsnf import layout
from lsnf.mlflow_store import Tracker
from lsnf.tracking import log_epoch, log_outcome, log_run_config, log_training_end, run_tags

__all__ = ["failure_report", "failures_since", "sync"]


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
    for jobs whose logging failed or into a store created later. Idempotent."""
    from lsnf.config import load_config
    from lsnf.errors import UserError
    from lsnf.io import read_json_lines
    from lsnf.registry import EVALUATIONS

    if not uri:
        raise UserError("lsnf track sync needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    root = str(results_dir)
    runs = layout.runs_on_disk(root)
    if not runs:
        raise UserError(f"{root} holds no models/ or eval/ runs to sync")
    failed = []
    for exp, run in runs:
        key = f"{exp}/{run}"
        tracker = Tracker(uri, experiment, key, tags=run_tags(key))
        model_dir = Path(layout.model_dir(exp, run, root))
        if (model_dir / layout.CONFIG).is_file():
            log_run_config(tracker, load_config(model_dir / layout.CONFIG))
            for row in read_json_lines(model_dir / layout.METRICS):
                log_epoch(tracker, int(row["epoch"]), row)
            if (model_dir / layout.MODEL).is_file():
                log_training_end(tracker, model_dir)
        for result in sorted(Path(layout.eval_dir(exp, run, root)).glob("*.json")):
            record = json.loads(result.read_text())
            examples = result.with_name(record.get("examples", {}).get("file", result.name))
            files = [examples, result, result.with_suffix(".png")]
            log_outcome(tracker, record, list(dict.fromkeys(f for f in files if f.is_file())))
        for ev in (e for e in EVALUATIONS.values() if not e.result):  # a grid, no result
            grid = Path(layout.result(exp, run, f"{ev.stem}.png", root))
            if grid.is_file():
                log_outcome(tracker, None, [grid])
        if tracker.disabled:
            failed.append(key)
    if failed:
        raise UserError(
            f"MLflow logging failed for {len(failed)} of {len(runs)} runs "
            f"({', '.join(failed)}); see the warnings above, then sync again"
        )
    return f"[lsnf] synced {len(runs)} runs into {uri} (experiment {experiment})"
