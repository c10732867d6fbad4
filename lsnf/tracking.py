"""MLflow tracking, best effort: the result files on disk are the source of truth.

One MLflow run per trained model, found again by its tag ``lsnf.run_key`` (e.g.
``mnist_anomaly/flow-digit1-seed0``): training logs params (the resolved config), per-epoch
metrics and artifacts; every evaluation logs its metric and result JSON into the same run, so
``mlflow ui`` compares models side by side. If the tracking store cannot be reached, the
failure is reported on stderr and the job carries on: nothing on disk depends on MLflow.
mlflow is imported only here, and only when tracking is on.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Tracker", "flatten"]


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


@dataclass
class Tracker:
    """Logs to the MLflow run tagged ``run_key`` in ``experiment`` at ``uri``.

    Every method swallows tracking errors after reporting them once: a dead tracking server
    must never fail a job or lose a result.
    """

    uri: str
    experiment: str
    run_key: str
    disabled: bool = False
    _cached: tuple[Any, str] | None = None

    def _handle(self) -> tuple[Any, str]:
        """(client, run id), created once. Store set-up is retried: parallel jobs that open a
        fresh SQLite store at the same moment can collide while its tables are created."""
        if self._cached is None:
            import time

            for attempt in range(3):
                try:
                    client = self._client()
                    self._cached = (client, self._find_or_create_run(client))
                    break
                except Exception:
                    if attempt == 2:
                        raise
                    time.sleep(2.0 * (attempt + 1))
        assert self._cached is not None
        return self._cached

    def init_store(self) -> None:
        """Create the store's tables and the experiment once, before jobs run in parallel."""
        try:
            self._experiment_id(self._client())
        except Exception as err:
            self._warn("initialise the store", err)

    def _warn(self, what: str, err: BaseException) -> None:
        print(
            f"[lsnf] WARNING: MLflow tracking failed ({what}) at {self.uri}: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            f"The result files on disk are complete; re-log them later if needed.",
            file=sys.stderr,
        )
        self.disabled = True

    def _client(self) -> Any:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls home from jobs
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
        exp_name, _, run_name = self.run_key.partition("/")
        run = client.create_run(
            exp_id, run_name=self.run_key, tags={"lsnf.run_key": self.run_key,
                                                 "lsnf.experiment": exp_name, "lsnf.run": run_name}
        )  # fmt: skip
        return run.info.run_id

    def log_params(self, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        if self.disabled:
            return
        try:
            from mlflow.entities import Param, RunTag

            client, rid = self._handle()
            flat = [Param(k, str(v)) for k, v in flatten(params).items()]
            existing = client.get_run(rid).data.params
            flat = [p for p in flat if p.key not in existing]  # params are write-once
            client.log_batch(rid, params=flat, tags=[RunTag(k, v) for k, v in (tags or {}).items()])
        except Exception as err:
            self._warn("log params", err)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.disabled:
            return
        try:
            import math
            import time

            from mlflow.entities import Metric

            client, rid = self._handle()
            ts = int(time.time() * 1000)
            batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)]  # fmt: skip
            client.log_batch(rid, metrics=batch)
        except Exception as err:
            self._warn("log metrics", err)

    def log_artifacts(self, paths: list[str | Path], subdir: str | None = None) -> None:
        if self.disabled:
            return
        try:
            client, rid = self._handle()
            for p in paths:
                if Path(p).exists():
                    client.log_artifact(rid, str(p), artifact_path=subdir)
        except Exception as err:
            self._warn("log artifacts", err)

    def set_terminated(self, status: str = "FINISHED") -> None:
        if self.disabled:
            return
        try:
            client, rid = self._handle()
            client.set_terminated(rid, status=status)
        except Exception as err:
            self._warn("end run", err)
