"""Best-effort tracking (lsnf.tracking): an unreachable or failing MLflow store is reported,
logged and summarised, never raised; the report names the cause."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_unreachable_tracking_server_is_reported_not_raised(capsys, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from lsnf.tracking.store import Tracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    t = Tracker("http://127.0.0.1:9", "lsnf-test", "x/flow-seed0")
    t.log_metrics({"a": 1.0})
    t.log_params({"b": 2})
    assert t.disabled
    err = capsys.readouterr().err
    assert "MLflow tracking failed" in err and "result files on disk are complete" in err


def test_tracking_failures_are_logged_and_summarised(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from lsnf.tracking.store import Tracker, init_store
    from lsnf.tracking.sync import failure_report, failures_since

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    log = tmp_path / "logs" / "mlflow-failures.jsonl"
    log.parent.mkdir()
    log.write_text('{"run_key": "old/run", "what": "log metrics", "error": "x", "uri": "u"}\n')
    offset = log.stat().st_size  # failures of an earlier workflow run are not reported again
    init_store("http://127.0.0.1:9", "e", str(log))  # as onstart does
    t = Tracker("http://127.0.0.1:9", "e", "exp/flow-seed0", failure_log=log)
    t.log_metrics({"a": 1.0})
    t.log_metrics({"a": 2.0})  # disabled after the first failure: one line per job
    with open(log, "a") as f:
        f.write('{"run_key": "exp/gaussian-seed0", "wh')  # cut short by a killed job
    failures = failures_since(log, offset)
    assert [f["run_key"] for f in failures] == ["", "exp/flow-seed0", "?"]
    report = failure_report(log, offset)
    assert report.startswith("[lsnf] MLflow tracking failed in 2 job(s) and when creating")
    assert "exp/flow-seed0: log metrics: MlflowException" in report and "old/run" not in report
    assert failure_report(log, log.stat().st_size) == ""


def test_a_tracking_failure_names_its_cause_not_sqlalchemys_autoflush_preamble() -> None:
    """#28 B10: what a read-only SQLite store raises through MLflow, as a chain."""
    import sqlite3

    from lsnf.tracking.store import describe_error

    autoflush = (
        "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush "
        "block if this flush is occurring prematurely)\n(sqlite3.OperationalError) attempt to "
        "write a readonly database\n[SQL: INSERT INTO metrics ...]"
    )
    try:
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as cause:
            raise RuntimeError(autoflush) from cause
    except RuntimeError as err:
        text = describe_error(err)
    assert text == (
        "RuntimeError: (sqlite3.OperationalError) attempt to write a readonly database "
        "(cause: OperationalError: attempt to write a readonly database)"
    )
    assert describe_error(ValueError("one\ntwo")) == "ValueError: one"
