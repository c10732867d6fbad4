"""An MLflow client, best effort: the result files on disk are the source of truth.

:class:`Tracker` logs params, metrics, dataset inputs and artifacts into one run, found again by
its tag ``lsnf.run_key``; each write is idempotent (a metric value already logged at that step,
a param, a dataset input or an artifact is not logged twice). If the store cannot be reached,
the failure is reported on stderr, appended as one JSON line to the failure log (if given), and
the job carries on: nothing on disk depends on MLflow. What lsnf logs is :mod:`lsnf.tracking.log`'s
business; mlflow is imported only here and there, and only when tracking is on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HTTP_DEFAULTS", "Tracker", "describe_error", "flatten", "init_store"]

# A dead tracking server must cost a job seconds, not minutes: MLflow's HTTP client retries
# 7 times with exponential backoff by default (~4 minutes per request). Users can still set
# these variables themselves.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}`` (MLflow params are flat)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def describe_error(err: BaseException) -> str:
    """One line for a tracking failure: the error's type and first telling line, and its deepest
    cause's (SQLAlchemy's "(raised as a result of Query-invoked autoflush ...)" preamble is
    skipped: it hid, for one, "attempt to write a readonly database")."""

    def line(e: BaseException) -> str:
        telling = [
            text.strip()
            for text in str(e).splitlines()
            if text.strip() and not text.strip().startswith("(raised as a result of")
        ]
        return f"{type(e).__name__}: {telling[0] if telling else ''}"

    root, seen = err, {id(err)}
    while (cause := root.__cause__ or root.__context__) is not None and id(cause) not in seen:
        root = cause
        seen.add(id(root))
    return line(err) if root is err else f"{line(err)} (cause: {line(root)})"


@dataclass
class Tracker:
    """An MLflow client for the run tagged ``lsnf.run_key = run_key`` in ``experiment`` at
    ``uri`` (created with ``tags`` on first use).

    Every method swallows tracking errors after reporting them once: a dead tracking server
    must never fail a job or lose a result.
    """

    uri: str
    experiment: str
    run_key: str
    failure_log: Path | None = None
    tags: dict[str, str] = field(
        default_factory=dict
    )  # the run's tags (lsnf.tracking.log.run_tags)
    disabled: bool = False
    _cached: tuple[Any, str] | None = None

    def __post_init__(self) -> None:
        if self.failure_log is not None:
            self.failure_log = Path(self.failure_log)

    def _handle(self) -> tuple[Any, str]:
        """(client, run id), created once, with the run's tags. SQLite store set-up is retried:
        parallel jobs that open a fresh store at the same moment can collide while its tables
        are created. (A server's client retries by itself, see ``HTTP_DEFAULTS``.)"""
        from mlflow.entities import RunTag

        if self._cached is None:
            tries = 3 if self.uri.startswith("sqlite:") else 1
            for attempt in range(tries):
                try:
                    client = self._client()
                    rid = self._find_or_create_run(client)
                    existing = client.get_run(rid).data.tags
                    tags = [
                        RunTag(k, v)
                        for k, v in {"lsnf.run_key": self.run_key, **self.tags}.items()
                        if existing.get(k) != v
                    ]
                    if tags:  # runs of an older store get the tags too
                        client.log_batch(rid, tags=tags)
                    self._cached = (client, rid)
                    break
                except Exception:
                    if attempt == tries - 1:
                        raise
                    time.sleep(2.0 * (attempt + 1))
        assert self._cached is not None
        return self._cached

    def _warn(self, what: str, err: BaseException) -> None:
        """Report a tracking failure (stderr + failure log) and stop tracking in this job."""
        error = describe_error(err)
        print(
            f"[lsnf] WARNING: MLflow tracking failed ({what}) at {self.uri}: {error}. "
            f"The result files on disk are complete; this job's MLflow logging is missing.",
            file=sys.stderr,
        )
        self.disabled = True
        if self.failure_log is not None:
            line = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "uri": self.uri,
                "experiment": self.experiment,
                "run_key": self.run_key,
                "what": what,
                "error": error,
                "command": " ".join(sys.argv),
            }
            try:
                self.failure_log.parent.mkdir(parents=True, exist_ok=True)
                with open(self.failure_log, "a") as f:  # one short O_APPEND write per job
                    f.write(json.dumps(line) + "\n")
            except OSError as log_err:
                print(
                    f"[lsnf] WARNING: could not append to {self.failure_log}: {log_err}",
                    file=sys.stderr,
                )

    def _client(self) -> Any:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls home from jobs
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    def _experiment_id(self, client: Any) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        artifacts = None
        if self.uri.startswith("sqlite:///"):  # keep artifacts beside the store, not in ./mlruns
            db = Path(self.uri[len("sqlite:///") :])
            artifacts = (db.parent.resolve() / "mlartifacts").as_uri()
        try:
            return client.create_experiment(self.experiment, artifact_location=artifacts)
        except Exception:  # created meanwhile by a parallel job
            return client.get_experiment_by_name(self.experiment).experiment_id

    def _find_or_create_run(self, client: Any) -> str:
        """The id of this model's run (created with tags on first use)."""
        exp_id = self._experiment_id(client)
        found = client.search_runs([exp_id], f"tags.`lsnf.run_key` = '{self.run_key}'")
        if found:
            return found[0].info.run_id
        tags = {"lsnf.run_key": self.run_key, **self.tags}
        run = client.create_run(exp_id, run_name=self.run_key, tags=tags)
        return run.info.run_id

    def _best_effort(self, what: str, write: Callable[[Any, str], None]) -> None:
        """``write(client, run id)`` unless tracking is off here; a failure is reported once
        (:meth:`_warn`) and turns tracking off for the rest of the job."""
        if self.disabled:
            return
        try:
            write(*self._handle())
        except Exception as err:
            self._warn(what, err)

    def log_params(self, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        def write(client: Any, rid: str) -> None:
            from mlflow.entities import Param, RunTag

            flat = [Param(k, str(v)) for k, v in flatten(params).items()]
            existing = client.get_run(rid).data.params
            flat = [p for p in flat if p.key not in existing]  # params are write-once
            client.log_batch(rid, params=flat, tags=[RunTag(k, v) for k, v in (tags or {}).items()])

        self._best_effort("log params", write)

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, latest: bool = False
    ) -> None:
        """Log what is not logged yet: a value already in a key's history at this step is not
        logged again; with ``latest`` (one value per key: a result's), a value is logged unless
        it is the key's latest at this step, so a replay makes the files' values the latest."""

        def write(client: Any, rid: str) -> None:
            import math

            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            batch = [
                Metric(k, float(v), ts, step or 0)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            ]
            logged = client.get_run(rid).data.metrics  # latest value per key
            new = []
            for m in batch:
                if m.key in logged:
                    at_step = [h for h in client.get_metric_history(rid, m.key) if h.step == m.step]
                    last = max(at_step, key=lambda h: h.timestamp, default=None)
                    if latest:  # a result's: the file's value must be the latest
                        done = last is not None and last.value == m.value
                    else:  # an epoch's: two rows may log two values at one step
                        done = any(h.value == m.value for h in at_step)
                    if done:
                        continue
                    if last is not None and last.timestamp >= m.timestamp:  # it must be latest
                        m = Metric(m.key, m.value, last.timestamp + 1, m.step)
                new.append(m)
            if new:
                client.log_batch(rid, metrics=new)

        self._best_effort("log metrics", write)

    def log_inputs(self, inputs: list[Any]) -> None:
        """Dataset inputs (MLflow keeps one per name and digest)."""
        self._best_effort("log dataset inputs", lambda c, rid: c.log_inputs(rid, datasets=inputs))

    def log_artifacts(self, paths: list[str | Path], subdir: str | None = None) -> None:
        def write(client: Any, rid: str) -> None:
            for p in paths:
                if Path(p).exists():
                    client.log_artifact(rid, str(p), artifact_path=subdir)

        self._best_effort("log artifacts", write)

    def set_terminated(self, status: str = "FINISHED") -> None:
        self._best_effort("end run", lambda c, rid: c.set_terminated(rid, status=status))


def init_store(uri: str, experiment: str, failure_log: str | Path | None = None) -> None:
    """Create the store's tables and the experiment once, before jobs run in parallel (a fresh
    SQLite store can otherwise be set up twice at once). Never raises."""
    store = Tracker(uri, experiment, "", failure_log)
    try:
        store._experiment_id(store._client())
    except Exception as err:
        store._warn("initialise the store", err)
