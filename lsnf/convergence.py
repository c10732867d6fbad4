"""A model's convergence status, from its validation curves (docs/method.md §6.5).

For each curve (lower is better), compare its last point (epoch E) with its point at the start
of the last quarter of training (the latest validation epoch ≤ 3E/4; epoch 0 is always one):

- ``improvement = start − end``, ``relative = improvement / start``;
- its noise: for the reconstruction MSE (and 2s-ABP's flow NLL, docs/method.md §6.6), the
  standard error of the per-example differences (the same examples at both points); for KID,
  ``sqrt(var_start + var_end)`` of the bootstrap replicates over each point's samples;
- the curve has **converged** when ``relative < tolerance`` or ``improvement ≤ 2 × noise``:
  more training of the same length would not move it by more than the tolerance, or it is
  not moving beyond its own noise.

The model is **failed to train** when a curve ends no better than its trivial reference (the
mean training image for MSE, uniform noise for KID), else **converged** when every curve has,
else **not converged**. The statuses are the words the comparison's verdicts use.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "CONVERGED",
    "FAILED",
    "NOT_CONVERGED",
    "NOT_MEASURED",
    "judge_curve",
    "model_status",
    "verdict_for",
]

CONVERGED, NOT_CONVERGED, FAILED = "converged", "not converged", "failed to train"
NOT_MEASURED = "convergence not measured"  # a model trained without validation curves
NOISE_MULTIPLE = 2.0  # an improvement within this many standard errors is noise


def _noise(curve: str, start: np.ndarray, end: np.ndarray) -> float:
    """Standard error of ``start − end`` (module docstring)."""
    if curve == "valid_kid":  # bootstrap replicates of each point's KID
        return float(math.sqrt(start.var(ddof=1) + end.var(ddof=1)))
    d = start - end  # per example, the same examples at both points: paired
    return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("inf")


def judge_curve(
    curve: str,
    points: dict[int, float],
    arrays: dict[int, np.ndarray],
    tolerance: float,
    reference: float | None,
) -> dict[str, Any]:
    """One curve's judgement (module docstring): ``points`` validation epoch -> value,
    ``arrays`` epoch -> its noise array, ``reference`` its trivial reference's value."""
    end_epoch = max(points)
    start_epoch = max(e for e in points if e <= 0.75 * end_epoch)
    start, end = points[start_epoch], points[end_epoch]
    improvement = start - end
    relative = improvement / abs(start) if start else float("nan")
    noise = _noise(curve, arrays[start_epoch], arrays[end_epoch])
    failed = reference is not None and end >= reference
    moving = relative >= tolerance and improvement > NOISE_MULTIPLE * noise
    return {
        "from_epoch": start_epoch,
        "to_epoch": end_epoch,
        "start": start,
        "end": end,
        "relative_improvement": relative,
        "noise_se": noise,
        "reference": reference,
        "status": FAILED if failed else NOT_CONVERGED if moving else CONVERGED,
    }


def _text(curve: str, j: dict[str, Any], label: str) -> str:
    if j["status"] == FAILED:
        return f"{label} {j['end']:.4g} is no better than {j['reference']:.4g} (trivial reference)"
    return (
        f"{label} {-100 * j['relative_improvement']:+.1f}% over epochs "
        f"{j['from_epoch']}→{j['to_epoch']} (noise ±{100 * j['noise_se'] / abs(j['start']):.1f}%)"
    )


def model_status(
    history: list[dict[str, float]],
    arrays: dict[int, dict[str, np.ndarray]],
    references: dict[str, float],
    tolerance: float,
) -> dict[str, Any]:
    """The model's status from its history rows (``epoch`` and the curves' values, epoch 0
    included) and per-epoch noise ``arrays``; ``references``: curve -> trivial reference."""
    from lsnf.validation import CURVES

    curves = {}
    for curve in CURVES:
        points = {int(r["epoch"]): r[curve] for r in history if curve in r}
        if len(points) >= 2:
            judged = judge_curve(
                curve,
                points,
                {e: arrays[e][curve] for e in points},
                tolerance,
                references.get(curve),
            )
            curves[curve] = judged
    statuses = {j["status"] for j in curves.values()}
    status = (
        FAILED
        if FAILED in statuses
        else NOT_CONVERGED
        if NOT_CONVERGED in statuses or not curves
        else CONVERGED
    )
    detail = "; ".join(_text(c, j, CURVES[c][0]) for c, j in curves.items()) or (
        "no validation curve (train.validate_every: 0)"
    )
    return {
        "status": status,
        "detail": detail,
        "criterion": (
            f"converged: each validation curve improved by < {100 * tolerance:g}% over the last "
            f"quarter of training or by ≤ {NOISE_MULTIPLE:g} standard errors; failed: a curve "
            f"ends no better than its trivial reference"
        ),
        "curves": curves,
    }


def verdict_for(sides: dict[str, list[str]], interval_verdict: str) -> str:
    """A comparison's verdict given each side's model statuses (name -> the status of each of
    its seeds): "failed to train: X" when a side failed (a curve or the result itself no better
    than its trivial reference), "undecided (not converged: X)" or "undecided (convergence not
    measured: X)" when a side's models are not all converged, else the interval's verdict
    (better / worse / indistinguishable)."""
    for status, text in (
        (FAILED, "failed to train: {}"),
        (NOT_CONVERGED, "undecided (not converged: {})"),
        (NOT_MEASURED, "undecided (convergence not measured: {})"),
    ):
        names = [name for name, statuses in sides.items() if status in statuses]
        if names:
            return text.format(", ".join(names))
    return interval_verdict
