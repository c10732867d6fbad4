"""Convergence status, from validation curves (docs/method.md §6.5).

Each curve (lower is better) is judged over the last part of training, ending at its last
point (epoch E):

- **trend** (at least ``TREND_POINTS`` validation points at epochs ≥ E/2): the least-squares
  line through those points; ``improvement`` = the fall it projects over another quarter of
  training (−slope × E/4), ``relative = improvement / (the line's value at E)``; its noise is
  the slope's standard error from the residuals (× E/4), and "beyond noise" means beyond the
  two-sided 95% Student-t quantile (points − 2 degrees of freedom) of it. All the points count,
  so a curve as noisy as a validation KID of a few hundred samples is still read rightly;
- **two points** (fewer validation points): its last point against its point at the start of
  the last quarter (the latest validation epoch ≤ 3E/4; epoch 0 is always one),
  ``improvement = start − end``, ``relative = improvement / start``; its noise: for the
  reconstruction MSE (and 2s-ABP's flow NLL, docs/method.md §6.6), the standard error of the
  per-example differences (the same examples at both points); for KID,
  ``sqrt(var_start + var_end)`` of the bootstrap replicates over each point's samples; beyond
  noise means beyond ``NOISE_MULTIPLE`` of it;
- the curve has **converged** when ``relative < tolerance`` or the improvement is not beyond
  its noise: more training of a quarter's length would not move it by more than the
  tolerance, or it is not moving beyond its own noise.

A curve **failed to train** when it ends no better than its trivial reference (the mean
training image for MSE, uniform noise for KID).

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
    "FAILED",
    "NOT_CONVERGED",
    "NOT_MEASURED",
    "curve_text",
    "judge_curve",
    "model_status",
    "status_for",
    "verdict_for",
]

CONVERGED, NOT_CONVERGED, FAILED = "converged", "not converged", "failed to train"
NOT_MEASURED = "convergence not measured"  # a model trained without validation curves
NOISE_MULTIPLE = 2.0  # two-point rule: an improvement within this many standard errors is noise
TREND_POINTS = 4  # validation points in the last half of training that the trend rule needs
FLOW_FIT = "valid_flow_nll"  # 2s-ABP's second stage (docs/method.md §6.6)


def _noise(curve: str, start: np.ndarray, end: np.ndarray) -> float:
    """Standard error of ``start − end`` (module docstring)."""
    if curve == "valid_kid":  # bootstrap replicates of each point's KID
        return float(math.sqrt(start.var(ddof=1) + end.var(ddof=1)))
    d = start - end  # per example, the same examples at both points: paired
    return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("inf")


def _trend(epochs: list[int], values: list[float], end_epoch: int) -> dict[str, float]:
    """The trend rule's figures (module docstring) for points ``epochs`` -> ``values``."""
    from scipy import stats

    fit = stats.linregress(np.asarray(epochs, float), np.asarray(values, float))
    quarter = end_epoch / 4
    fitted_end = fit.intercept + fit.slope * end_epoch
    return {
        "improvement": -fit.slope * quarter,
        "relative": -fit.slope * quarter / abs(fitted_end) if fitted_end else float("nan"),
        "noise": fit.stderr * quarter,
        "multiple": float(stats.t.ppf(0.975, len(epochs) - 2)),
    }


def judge_curve(
    curve: str,
    points: dict[int, float],
    arrays: dict[int, np.ndarray],
    tolerance: float,
    reference: float | None,
) -> dict[str, Any]:
    """One curve's judgement (module docstring): ``points`` validation epoch -> value,
    ``arrays`` epoch -> its noise array (two-point rule), ``reference`` its trivial
    reference's value."""
    end_epoch = max(points)
    end = points[end_epoch]
    window = sorted(e for e in points if e >= end_epoch / 2)
    if len(window) >= TREND_POINTS:
        start_epoch, method = window[0], "trend"
        t = _trend(window, [points[e] for e in window], end_epoch)
        improvement, relative, noise, multiple = (
            t["improvement"],
            t["relative"],
            t["noise"],
            t["multiple"],
        )
    else:
        start_epoch, method = max(e for e in points if e <= 0.75 * end_epoch), "two points"
        improvement = points[start_epoch] - end
        relative = improvement / abs(points[start_epoch]) if points[start_epoch] else math.nan
        noise = _noise(curve, arrays[start_epoch], arrays[end_epoch])
        multiple = NOISE_MULTIPLE
    failed = reference is not None and end >= reference
    moving = relative >= tolerance and improvement > multiple * noise
    return {
        "method": method,
        "from_epoch": start_epoch,
        "to_epoch": end_epoch,
        "points": len(window) if method == "trend" else 2,
        "start": points[start_epoch],
        "end": end,
        "relative_improvement": relative,
        "noise_se": noise,
        "noise_multiple": multiple,
        "noise_relative": noise * relative / improvement if improvement else math.nan,
        "reference": reference,
        "status": FAILED if failed else NOT_CONVERGED if moving else CONVERGED,
    }


def _label(curve: str) -> str:
    from lsnf.validation import CURVES

    return CURVES[curve][0] if curve in CURVES else "2s-ABP flow fit validation NLL"


def curve_text(curve: str, j: dict[str, Any]) -> str:
    """One curve's judgement in words."""
    label = _label(curve)
    if j["status"] == FAILED:
        return f"{label} {j['end']:.4g} is no better than {j['reference']:.4g} (trivial reference)"
    change = f"{-100 * j['relative_improvement']:+.1f}%"
    if j.get("method") == "trend":  # ± a 95% interval of the projection
        ci = 100 * j["noise_relative"] * j["noise_multiple"]
        return (
            f"{label} {change} (±{ci:.1f}%) per further quarter of training, by its trend over "
            f"epochs {j['from_epoch']}→{j['to_epoch']} ({j['points']} points): {j['status']}"
        )
    return (
        f"{label} {change} over epochs {j['from_epoch']}→{j['to_epoch']} "
        f"(noise ±{100 * j['noise_se'] / abs(j['start']):.1f}%): {j['status']}"
    )


CRITERION = (
    "a curve has converged when it is projected to improve by < {tol:g}% over another quarter "
    "of training, or not beyond its noise (trend over the last half with ≥ {points} points, "
    "else the last quarter's two points); failed: it ends no better than its trivial reference"
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
    detail = "; ".join(curve_text(c, j) for c, j in curves.items()) or (
        "no validation curve (train.validate_every: 0)"
    )
    return {
        "status": status,
        "detail": detail,
        "criterion": CRITERION.format(tol=100 * tolerance, points=TREND_POINTS),
        "curves": curves,
    }


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
    status = (
        NOT_CONVERGED if any(j["status"] == NOT_CONVERGED for j in judged.values()) else (CONVERGED)
    )
    return {"status": status, "detail": "; ".join(curve_text(c, j) for c, j in judged.items())}


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
