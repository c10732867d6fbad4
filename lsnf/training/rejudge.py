"""A trained model's convergence judged again from its stored validation curves (docs/method.md
§6.5): its status had training stopped after each earlier epoch (``lsnf convergence``), and
its record rewritten under this lsnf's rule (``--rewrite``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsnf.errors import UserError
from lsnf.training.checkpoint import load_checkpoint, save_checkpoint
from lsnf.training.convergence import CURVES, model_status, status_by_budget

__all__ = ["budget_table", "rewrite_convergence"]

_WIDTH = 34  # characters of a curve's column


def _curves_and_references(path: str | Path) -> tuple[dict[str, Any], dict[str, float]]:
    """(the checkpoint's state, the value of each curve's trivial reference)."""
    state = load_checkpoint(path)
    setup = state.get("validation_setup")
    if not setup:
        raise UserError(
            f"{path} has no validation curves (trained with train.validate_every: 0, or by "
            f"an lsnf before validation); retrain it with validation to judge its convergence"
        )
    return state, {c: r["value"] for c, r in setup["references"].items()}


def _cell(judged: dict[str, Any] | None) -> str:
    if judged is None:
        return "-"
    if judged["method"] == "trend":
        return f"{judged['status']} ({-100 * judged['relative_improvement']:+.1f}%)"
    return f"{judged['status']} ({judged['method']})"


def budget_table(path: str | Path, tolerance: float | None = None) -> str:
    """Each validation curve's status had the run of ``path`` stopped after epoch E (its points
    up to E), a row per E; ``tolerance`` defaults to the run's train.convergence_tolerance."""
    state, references = _curves_and_references(path)
    tolerance = tolerance or state["config"]["train"]["convergence_tolerance"]
    rows = status_by_budget(state["history"], references, tolerance)
    curves = [c for c in CURVES if any(c in r["status"]["curves"] for r in rows)]
    lines = [
        f"{path}: each validation curve's status had training stopped after epoch E "
        f"(this run's points up to E; tolerance {tolerance:g}, docs/method.md §6.5)",
        f"{'E':>3} {'iteration':>9}  " + "  ".join(f"{CURVES[c][0]:<{_WIDTH}}" for c in curves),
    ]
    for r in rows:
        cells = [_cell(r["status"]["curves"].get(c)) for c in curves]
        lines.append(
            f"{r['epoch']:>3} {r['iteration']:>9}  " + "  ".join(f"{x:<{_WIDTH}}" for x in cells)
        )
    return "\n".join(lines)


def rewrite_convergence(path: str | Path) -> str:
    """Replace the convergence record of the jointly trained model ``path`` by this lsnf's
    judgement of its curves, with its own tolerance (its parameters stay as they are); the
    new status."""
    state, references = _curves_and_references(path)
    if "two_stage" in state:
        raise UserError(
            "--rewrite is for jointly trained models: refit a 2s-ABP model instead "
            "(lsnf fit-two-stage)"
        )
    tolerance = state["config"]["train"]["convergence_tolerance"]
    state["convergence"] = model_status(state["history"], references, tolerance)
    save_checkpoint(path, state)
    return state["convergence"]["status"]
