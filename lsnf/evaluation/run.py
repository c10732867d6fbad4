"""One evaluation of a model file, as ``lsnf eval NAME`` runs it: its settings from a file and
overrides, the model (or the record of one that failed to train, docs/method.md §6.7), the
result identified by its run key and saved, and the same evaluation of every snapshot of the
run, the comparison's course (§9.1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from lsnf import config, layout
from lsnf.config import EvaluationSettings
from lsnf.evaluation.registry import Evaluation, settings_of
from lsnf.evaluation.results import Outcome, failed_outcome, identify, save_outcome
from lsnf.training.failure import FailedModelError

__all__ = ["evaluate_course", "evaluate_file", "load_settings"]


def load_settings(
    ev: Evaluation, settings_file: str | None, overrides: list[str]
) -> EvaluationSettings:
    """The settings of evaluation ``ev``: the YAML file ``settings_file`` (the workflow writes
    one per job), then ``key=value`` overrides; a setting it does not take is refused."""
    raw = yaml.safe_load(Path(settings_file).read_text()) if settings_file else {}
    return settings_of(ev, config.apply_overrides(raw or {}, overrides), settings_file or "--set")


def evaluate_file(
    ev: Evaluation,
    settings: EvaluationSettings,
    checkpoint: str | Path,
    run_key: str | None,
    device: str | None = None,
    data_root: str | None = None,
) -> tuple[Any, Outcome]:
    """(the trained model, its outcome of ``ev``) for the model file ``checkpoint``; a model
    that failed to train gets a failed outcome, with no values. The record names ``run_key``."""
    from lsnf.training.checkpoint import failed_model, load_model

    try:
        trained = load_model(checkpoint, device=device, data_root=data_root)
    except FailedModelError:
        trained = failed_model(checkpoint)
        outcome = failed_outcome(ev, trained, settings)
    else:
        outcome = ev.function(trained, settings)
    if outcome.record is not None:
        outcome = replace(outcome, record=identify(outcome.record, run_key, trained.config))
    return trained, outcome


def evaluate_course(
    ev: Evaluation,
    settings: EvaluationSettings,
    trained: Any,
    out: str | Path,
    run_key: str | None,
    device: str | None = None,
    data_root: str | None = None,
) -> None:
    """The evaluation of every snapshot of the run of ``trained`` (docs/method.md §9.1) with
    the same settings, each a result of its own (layout.course_result of the result ``out``),
    then the course index beside the result, written last: a listed course is complete. A
    model that failed to train has no course (§6.7): its index lists the result alone."""
    from lsnf.io import atomic_write_json
    from lsnf.training.checkpoint import FailedModel, load_model

    points = []
    snapshots = (trained.path.parent / layout.SNAPSHOTS).glob("epoch-*.pt")
    for snap in [] if isinstance(trained, FailedModel) else sorted(snapshots):
        earlier = load_model(snap, device=device, data_root=data_root)
        epoch = int(earlier.training["selected"]["epoch"])
        outcome = ev.function(earlier, settings)
        record = identify(outcome.record, run_key, earlier.config)
        result = layout.course_result(out, epoch)
        save_outcome(replace(outcome, record=record), result, None)
        points.append(
            {"epoch": epoch, "iteration": earlier.training["iterations"],
             "file": str(Path(result).relative_to(Path(out).parent)), "value": record["value"]}
        )  # fmt: skip
        print(f"[lsnf] course, epoch {epoch}: {outcome.summary}")
    final = {"epoch": trained.training["epochs"], "iteration": trained.training["iterations"],
             "file": Path(out).name}  # fmt: skip
    atomic_write_json(
        layout.course_index(out),
        {"evaluation": ev.name, "points": [*points, final], "checkpoint_sha256": trained.sha256},
    )
