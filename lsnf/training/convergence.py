"""Convergence status, from validation curves (docs/method.md §6.5).

Each curve (lower is better) is judged by its **trend** over the last half of training: with
E its last validation epoch, the least-squares line through its points at epochs ≥ E/2;
``improvement`` = the fall it projects over another quarter of training (−slope × E/4; a rise
is a negative fall), ``relative = improvement / (the line's value at E)``; its noise, the
slope's standard error from the residuals (× E/4), and "beyond noise" means beyond the
two-sided 95% Student-t quantile (points − 2 degrees of freedom) of it. All the points count,
so a curve as noisy as a validation KID of a few hundred samples is read from its course, not
from two of its points.

- **converged**: ``|relative| < tolerance`` or the change is not beyond its noise: more
  training of a quarter's length would not move it, either way, by more than the tolerance;
- **not converged**: otherwise (still falling, or rising: over-training and early instability
  both show as a rise, and a rise in mid-training can turn back into a fall), and whenever the
  last half holds fewer than ``TREND_POINTS`` points;
- **failed to train**: it ends no better than its trivial reference (the mean training image
  for MSE, uniform noise for KID).

Which curves decide a result's verdict depends on the evaluation (:func:`status_for`): each
evaluation of the registry names its curve (sample quality: the validation KID; everything
that infers latents: the validation reconstruction MSE), to which 2s-ABP adds its flow fit. A
model that failed on any curve failed for every evaluation. The statuses are the words the
comparison's verdicts use.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "CONVERGED",
    "CURVES",
    "FAILED",
    "MIN_SEEDS",
    "NOT_CONVERGED",
    "NOT_MEASURED",
    "curve_text",
    "judge_curve",
    "model_status",
    "status_by_budget",
    "status_for",
    "verdict_for",
]

CONVERGED, NOT_CONVERGED, FAILED = "converged", "not converged", "failed to train"
# validation curve -> (its label, the trivial reference's label); lower is better for each
CURVES = {
    "valid_mse": ("validation reconstruction MSE", "the mean training image"),
    "valid_kid": ("validation KID", "uniform noise images"),
}
NOT_MEASURED = "convergence not measured"  # a model trained without validation curves
TREND_POINTS = 4  # validation points in the last half of training that a judgement needs
FLOW_FIT = "valid_flow_nll"  # 2s-ABP's second stage (docs/method.md §6.6)
MIN_SEEDS = 2  # seeds per side before a comparison decides (docs/method.md §9)


def _trend(epochs: list[int], values: list[float], end_epoch: int) -> dict[str, float]:
    """The trend rule's figures (module docstring) for points ``epochs`` -> ``values``."""
    from scipy import stats

    fit = stats.linregress(np.asarray(epochs, float), np.asarray(values, float))
    slope, intercept, stderr = float(fit.slope), float(fit.intercept), float(fit.stderr)
    quarter = end_epoch / 4
    fitted_end = intercept + slope * end_epoch
    # plain floats: the record goes into checkpoints, which load with weights_only=True
    return {
        "improvement": -slope * quarter,
        "relative": -slope * quarter / abs(fitted_end) if fitted_end else float("nan"),
        "noise": stderr * quarter,
        "noise_relative": stderr * quarter / abs(fitted_end) if fitted_end else float("nan"),
        "multiple": float(stats.t.ppf(0.975, len(epochs) - 2)),
    }


def judge_curve(
    curve: str,
    points: dict[int, float],
    tolerance: float,
    reference: float | None,
) -> dict[str, Any]:
    """One curve's judgement (module docstring): ``points`` validation epoch -> value,
    ``reference`` its trivial reference's value (None: none)."""
    end_epoch = max(points)
    end = points[end_epoch]
    window = sorted(e for e in points if e >= end_epoch / 2)
    judged: dict[str, Any] = {
        "from_epoch": window[0],
        "to_epoch": end_epoch,
        "points": len(window),
        "start": points[window[0]],
        "end": end,
        "reference": reference,
    }
    if len(window) < TREND_POINTS:
        judged |= {"method": "too few points", "relative_improvement": math.nan}
        status = NOT_CONVERGED
    else:
        t = _trend(window, [points[e] for e in window], end_epoch)
        moving = (
            abs(t["relative"]) >= tolerance and abs(t["improvement"]) > t["multiple"] * t["noise"]
        )
        judged |= {
            "method": "trend",
            "relative_improvement": t["relative"],
            "noise_se": t["noise"],
            "noise_multiple": t["multiple"],
            "noise_relative": t["noise_relative"],
        }
        status = NOT_CONVERGED if moving else CONVERGED
    failed = reference is not None and end >= reference
    return judged | {"status": FAILED if failed else status}


def _label(curve: str) -> str:
    return CURVES[curve][0] if curve in CURVES else "2s-ABP flow fit validation NLL"


def curve_text(curve: str, j: dict[str, Any]) -> str:
    """One curve's judgement in words."""
    label = _label(curve)
    if j["status"] == FAILED:
        return f"{label} {j['end']:.4g} is no better than {j['reference']:.4g} (trivial reference)"
    if j["method"] != "trend":
        return (
            f"{label}: {j['points']} point(s) over epochs {j['from_epoch']}→{j['to_epoch']}, "
            f"fewer than the {TREND_POINTS} its trend needs: {j['status']}"
        )
    ci = 100 * j["noise_relative"] * j["noise_multiple"]  # ± a 95% interval of the projection
    return (
        f"{label} {-100 * j['relative_improvement']:+.1f}% (±{ci:.1f}%) per further quarter of "
        f"training, by its trend over epochs {j['from_epoch']}→{j['to_epoch']} "
        f"({j['points']} points): {j['status']}"
    )


CRITERION = (
    "a curve has converged when its trend over the last half of training (≥ {points} points) "
    "projects a change (fall or rise) of < {tol:g}% over another quarter of training, or one "
    "not beyond its noise; failed: it ends no better than its trivial reference"
)


def model_status(
    history: list[dict[str, float]],
    references: dict[str, float],
    tolerance: float,
) -> dict[str, Any]:
    """The model's status from its history rows (``epoch`` and the curves' values, epoch 0
    included); ``references``: curve -> trivial reference."""
    curves = {}
    for curve in CURVES:
        points = {int(r["epoch"]): r[curve] for r in history if curve in r}
        if len(points) >= 2:
            curves[curve] = judge_curve(curve, points, tolerance, references.get(curve))
    statuses = {j["status"] for j in curves.values()}
    status = (
        FAILED
        if FAILED in statuses
        else NOT_CONVERGED
        if NOT_CONVERGED in statuses or not curves
        else CONVERGED
    )
    detail = "; ".join(curve_text(c, j) for c, j in curves.items()) or (
        "no validation curve (train.validate_every: 0)"
    )
    return {
        "status": status,
        "detail": detail,
        "criterion": CRITERION.format(tol=100 * tolerance, points=TREND_POINTS),
        "curves": curves,
    }


def status_by_budget(
    history: list[dict[str, float]],
    references: dict[str, float],
    tolerance: float,
) -> list[dict[str, Any]]:
    """:func:`model_status` had training stopped after each validation epoch ≥ 2 of this run
    (its points up to that epoch): the run's learning-rate schedule does not depend on the
    number of epochs, so a shorter run is this one's prefix (docs/results.md, budget to
    verdict). One row per epoch: ``epoch``, ``iteration`` and the status record."""
    points = {int(r["epoch"]): r for r in history if any(c in r for c in CURVES)}
    rows = []
    for end in sorted(e for e in points if e >= 2):
        prefix = [r for r in history if r["epoch"] <= end]
        rows.append(
            {
                "epoch": end,
                "iteration": int(points[end].get("iteration", 0)),
                "status": model_status(prefix, references, tolerance),
            }
        )
    return rows


def status_for(convergence: dict[str, Any] | None, curve: str) -> dict[str, str]:
    """The status that decides a result's verdicts (module docstring): ``convergence`` the
    model's record (:func:`model_status`, or 2s-ABP's combined one), ``curve`` the validation
    curve its evaluation names. A record without per-curve judgements gives its own status."""
    if not convergence:
        return {"status": NOT_MEASURED, "detail": "trained without validation curves"}
    curves = convergence.get("curves")
    if curves is None:
        return {"status": convergence["status"], "detail": convergence.get("detail") or ""}
    failed = {c: j for c, j in curves.items() if j["status"] == FAILED}
    if failed:
        return {"status": FAILED, "detail": "; ".join(curve_text(c, j) for c, j in failed.items())}
    if curve not in curves:
        return {
            "status": NOT_MEASURED,
            "detail": f"no {_label(curve)} curve (generation experiments record it: "
            f"training with a feature extractor)",
        }
    judged = {c: curves[c] for c in (curve, FLOW_FIT) if c in curves}
    moving = any(j["status"] == NOT_CONVERGED for j in judged.values())
    status = NOT_CONVERGED if moving else CONVERGED
    return {"status": status, "detail": "; ".join(curve_text(c, j) for c, j in judged.items())}


def verdict_for(
    sides: dict[str, list[str]], interval_verdict: str, min_seeds: int = MIN_SEEDS
) -> str:
    """What a comparison says before its course is read (docs/method.md §9.1), given each
    side's model statuses (name -> the status of each of its seeds): "failed to train: X" when
    a side failed (a curve or the result itself no better than its trivial reference),
    "undecided (fewer than 2 seeds: X)" when a side has fewer than ``min_seeds`` seeds (its
    interval holds no seed-to-seed spread, so another seed could flip it; §9), else
    ``interval_verdict``. Convergence no longer withholds a verdict: the settled rule of
    :mod:`lsnf.analysis.course` reads the comparison's own course instead."""
    failed = [name for name, statuses in sides.items() if FAILED in statuses]
    if failed:
        return f"failed to train: {', '.join(failed)}"
    few = [name for name, statuses in sides.items() if len(statuses) < min_seeds]
    if few:
        return f"undecided (fewer than {min_seeds} seeds: {', '.join(few)})"
    return interval_verdict
