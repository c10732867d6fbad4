"""MLflow tracking, best effort: the result files on disk are the source of truth.

One MLflow run per trained model, found again by its tag ``lsnf.run_key`` (e.g.
``mnist_anomaly/flow-digit1-seed0``) and tagged with its experiment, prior, seed, held-out digit
and mask (``lsnf.*``, for the UI's "Group by" and filters): training logs params (the resolved
config), per-epoch metrics, its training split as a dataset input and artifacts; every
evaluation logs its metrics, its test split as a dataset input, and its result JSON,
per-example file and grid into the same run, so ``mlflow ui`` compares models side by side.
Logging is idempotent (a metric value already logged at that step, a param, a dataset input
or an artifact is not logged twice), so :func:`sync` can replay the result files on disk into
any store, as often as needed. If the tracking store cannot be reached, the
failure is reported on stderr, appended as one JSON line to the failure log (if given), and
the job carries on: nothing on disk depends on MLflow. The workflow reads that log when it
ends and names the jobs whose MLflow logging is missing (:func:`failure_report`).
mlflow is imported only here, and only when tracking is on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsnf import layout

__all__ = [
    "Tracker",
    "dataset_input",
    "failure_report",
    "failures_since",
    "flatten",
    "open_tracker",
    "run_tags",
    "sync",
]

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


def run_tags(run_key: str) -> dict[str, str]:
    """Tags of a model's run from its key ``{experiment}/{run id}`` (lsnf.plan's run ids: prior,
    seed, held-out digit or mask); a key of another form gets only the first three."""
    from lsnf.plan import parse_run

    exp_name, _, run_name = run_key.partition("/")
    tags = {"lsnf.run_key": run_key, "lsnf.experiment": exp_name, "lsnf.run": run_name}
    try:
        run = parse_run(run_name)
    except ValueError:
        return tags
    tags.update({"lsnf.prior": run.prior, "lsnf.seed": str(run.seed)})
    if run.digit is not None:
        tags["lsnf.held_out_digit"] = str(run.digit)
    if run.mask is not None:
        tags["lsnf.mask"] = run.mask
    return tags


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


@dataclass
class Tracker:
    """Logs to the MLflow run tagged ``run_key`` in ``experiment`` at ``uri``.

    Every method swallows tracking errors after reporting them once: a dead tracking server
    must never fail a job or lose a result.
    """

    uri: str
    experiment: str
    run_key: str
    failure_log: Path | None = None
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
                        for k, v in run_tags(self.run_key).items()
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

    def init_store(self) -> None:
        """Create the store's tables and the experiment once, before jobs run in parallel."""
        try:
            self._experiment_id(self._client())
        except Exception as err:
            self._warn("initialise the store", err)

    def _warn(self, what: str, err: BaseException) -> None:
        """Report a tracking failure (stderr + failure log) and stop tracking in this job."""
        error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
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
        run = client.create_run(exp_id, run_name=self.run_key, tags=run_tags(self.run_key))
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
            batch = [
                Metric(k, float(v), ts, step or 0)
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and math.isfinite(v)
            ]
            logged = client.get_run(rid).data.metrics  # latest value per key
            new = []
            for m in batch:  # a value already logged at this step is not logged again
                if m.key in logged:
                    history = {(h.step, h.value) for h in client.get_metric_history(rid, m.key)}
                    if (m.step, m.value) in history:
                        continue
                new.append(m)
            if new:
                client.log_batch(rid, metrics=new)
        except Exception as err:
            self._warn("log metrics", err)

    def log_run_config(self, cfg: Any) -> None:
        """A training run's resolved config (a :class:`lsnf.config.RunConfig`) as params,
        with its prior and dataset as tags."""
        self.log_params(
            cfg.to_dict(), tags={"lsnf.prior": cfg.prior.kind, "lsnf.dataset": cfg.data.name}
        )

    def log_outcome(self, record: dict[str, Any] | None, files: list[Path]) -> None:
        """An evaluation's metrics (``record["mlflow_metrics"]``), its test split as a dataset
        input, and its files (result JSON, per-example file; grids)."""
        if record is not None:
            self.log_metrics(record["mlflow_metrics"])
            if "images_sha256" in record.get("data", {}):
                self.log_inputs([dataset_input(record["data"], "evaluation")])
        self.log_artifacts(list(files), subdir="results" if record is not None else "grids")

    def log_training_end(self, run_dir: Path) -> None:
        """A finished training run: its training split as a dataset input, its curves, resolved
        config and data provenance, and the run's end."""
        data = run_dir / layout.DATA
        if data.is_file():
            self.log_inputs([dataset_input(json.loads(data.read_text()), "training")])
        self.log_artifacts([run_dir / layout.METRICS, run_dir / layout.CONFIG, data], "training")
        self.set_terminated()

    def log_inputs(self, inputs: list[Any]) -> None:
        """Dataset inputs (MLflow keeps one per name and digest)."""
        if self.disabled:
            return
        try:
            client, rid = self._handle()
            client.log_inputs(rid, datasets=inputs)
        except Exception as err:
            self._warn("log dataset inputs", err)

    def log_epoch(self, epoch: int, stats: dict[str, float]) -> None:
        """Per-epoch training statistics, at step ``epoch`` (a ``fit`` callback)."""
        self.log_metrics(stats, step=epoch)

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


def open_tracker(
    run_key: str | None, uri: str | None, experiment: str, failure_log: Path | None
) -> Tracker | None:
    """A tracker for ``run_key`` (None without one), or a clear error without a tracking URI."""
    if not run_key:
        return None
    if not uri:
        from lsnf.errors import UserError

        raise UserError("MLflow tracking needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    return Tracker(uri, experiment, run_key, failure_log=failure_log)


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
    from lsnf.plan import SAMPLES_GRID

    if not uri:
        raise UserError("lsnf track sync needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    root = str(results_dir)
    runs = layout.runs_on_disk(root)
    if not runs:
        raise UserError(f"{root} holds no models/ or eval/ runs to sync")
    failed = []
    for exp, run in runs:
        key = f"{exp}/{run}"
        tracker = Tracker(uri, experiment, key)
        model_dir = Path(layout.model_dir(exp, run, root))
        if (model_dir / layout.CONFIG).is_file():
            tracker.log_run_config(load_config(model_dir / layout.CONFIG))
            for row in read_json_lines(model_dir / layout.METRICS):
                tracker.log_epoch(int(row["epoch"]), row)
            if (model_dir / layout.MODEL).is_file():
                tracker.log_training_end(model_dir)
        for result in sorted(Path(layout.eval_dir(exp, run, root)).glob("*.json")):
            record = json.loads(result.read_text())
            examples = result.with_name(record.get("examples", {}).get("file", result.name))
            files = [examples, result, result.with_suffix(".png")]
            tracker.log_outcome(record, list(dict.fromkeys(f for f in files if f.is_file())))
        samples = Path(layout.result(exp, run, SAMPLES_GRID, root))
        if samples.is_file():
            tracker.log_outcome(None, [samples])
        if tracker.disabled:
            failed.append(key)
    if failed:
        raise UserError(
            f"MLflow logging failed for {len(failed)} of {len(runs)} runs "
            f"({', '.join(failed)}); see the warnings above, then sync again"
        )
    return f"[lsnf] synced {len(runs)} runs into {uri} (experiment {experiment})"
