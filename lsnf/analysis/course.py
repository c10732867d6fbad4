"""A comparison's course over training and the settled-verdict rule (docs/method.md §9.1).

A comparison "LFBM − baseline" is measured not only at the end of training but at the kept
snapshots of the same runs (``train.snapshots``, :func:`lsnf.training.train.snapshot_epochs`): a
shorter run is a prefix of a longer one, since the learning-rate schedule does not depend on the
epoch count. Each point of the course is the compared metric itself, on the same test examples, with
the difference of seed means and its 95% interval (docs/method.md eq. 9.4).

The rule (eq. 9.5-9.7), at the last budget E (learning iterations):

- **better / worse at E** when (i) the test interval at E excludes 0; (ii) every course point
  of the last half of training (iterations ≥ E/2) has the sign of the difference at E; and
  (iii) the least-squares line through those points, projected to 2E, keeps that sign beyond
  its noise: ``|d̂(2E)| > t_{0.95, m-2} · se(2E)`` (one-sided), with ``m ≥ MIN_POINTS`` points,
  ``se(2E) = s · sqrt(1/m + (2E − x̄)² / Sxx)`` and ``s`` the larger of the residual standard
  deviation and the points' own bootstrap standard error (root mean square);
- **indistinguishable at E** when the interval at E includes 0 and either lies inside the
  metric's equivalence margin (a share of the baseline's value) or both sides' models have
  converged (docs/method.md §6.5);
- otherwise **undecided (not settled: …)**, naming the reason: the sign changed at a point of
  the last half, the projection crosses zero or is within its noise, too few points, or an
  interval that includes 0 beyond the margin.

:func:`settle` judges one course; :func:`settled_since` walks its prefixes to say from which
budget on the same verdict held. Pure numpy/scipy: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_POINTS",
    "CoursePoint",
    "Settled",
    "settle",
    "settled_since",
]

MIN_POINTS = 4  # course points in the last half of training that a trend needs (as §6.5's)
NOT_SETTLED = "undecided (not settled: {})"


@dataclass(frozen=True)
class CoursePoint:
    """One budget of a comparison's course: the difference of seed means at ``iteration``
    learning iterations and its bootstrap standard error."""

    iteration: int
    estimate: float
    se: float


@dataclass(frozen=True)
class Settled:
    """The rule's answer for one course: ``verdict`` (better / worse / indistinguishable, or
    "undecided (not settled: …)"), its budget, and the figures behind it."""

    verdict: str
    iteration: int  # E
    points: int  # course points in the last half
    projected: float  # d̂(2E), NaN without a trend
    noise: float  # t · se(2E), NaN without a trend
    reason: str  # why it settled or not, in words

    @property
    def settled(self) -> bool:
        return not self.verdict.startswith("undecided")


def _projection(half: Sequence[CoursePoint], end: int) -> tuple[float, float]:
    """d̂(2E) and its one-sided 95% noise bound t · se(2E) from the last half's points."""
    from scipy import stats

    x = np.array([p.iteration for p in half], float)  # (m,)
    y = np.array([p.estimate for p in half], float)  # (m,)
    m = len(x)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)  # (m,)
    s_resid = math.sqrt(float(residual @ residual) / (m - 2))
    s_meas = math.sqrt(float(np.mean([p.se**2 for p in half])))
    s = max(s_resid, s_meas)
    sxx = float(((x - x.mean()) ** 2).sum())
    se = s * math.sqrt(1 / m + (2 * end - x.mean()) ** 2 / sxx)
    return float(intercept + slope * 2 * end), float(stats.t.ppf(0.95, m - 2)) * se


def settle(
    course: Sequence[CoursePoint],
    interval_verdict: str,
    higher_is_better: bool,
    inside_margin: bool,
    converged: bool,
) -> Settled:
    """The settled verdict of a course (module docstring) whose last point is the budget E;
    ``interval_verdict``: the verdict of the interval at E (the one the table reports, after
    any correction for the number of comparisons); ``inside_margin``: that interval lies inside
    the equivalence margin; ``converged``: every model on both sides has converged."""
    course = sorted(course, key=lambda p: p.iteration)
    end = course[-1]
    half = [p for p in course if 2 * p.iteration >= end.iteration]
    nan = math.nan
    if interval_verdict == "indistinguishable":
        if inside_margin or converged:
            why = "inside the equivalence margin" if inside_margin else "both sides converged"
            return Settled(interval_verdict, end.iteration, len(half), nan, nan, why)
        return Settled(
            NOT_SETTLED.format("the interval includes 0 but exceeds the equivalence margin"),
            end.iteration,
            len(half),
            nan,
            nan,
            "neither equivalent nor converged",
        )
    sign = np.sign(end.estimate)
    flipped = [p for p in half if np.sign(p.estimate) != sign]
    if flipped:
        at = flipped[-1].iteration
        why = f"the difference had the other sign at {at} iterations"
        return Settled(NOT_SETTLED.format(why), end.iteration, len(half), nan, nan, why)
    if len(half) < MIN_POINTS:
        why = f"{len(half)} course point(s) in the last half of training, fewer than {MIN_POINTS}"
        return Settled(NOT_SETTLED.format(why), end.iteration, len(half), nan, nan, why)
    projected, noise = _projection(half, end.iteration)
    if np.sign(projected) != sign or abs(projected) <= noise:
        why = f"its trend projects {projected:+.4g} at {2 * end.iteration} iterations, " + (
            "across zero" if np.sign(projected) != sign else f"within its noise ±{noise:.4g}"
        )
        return Settled(NOT_SETTLED.format(why), end.iteration, len(half), projected, noise, why)
    why = f"sign held over the last half; projected {projected:+.4g} ± {noise:.4g} at 2E"
    return Settled(interval_verdict, end.iteration, len(half), projected, noise, why)


def settled_since(
    course: Sequence[CoursePoint],
    verdicts: Sequence[str],
    higher_is_better: bool,
    inside_margin: Sequence[bool],
    converged: bool,
) -> int | None:
    """The earliest budget from which :func:`settle`, applied to every prefix of ``course``
    (``verdicts`` and ``inside_margin``: each point's interval verdict and margin test), gave
    the final prefix's settled verdict without a break; None when the final one is not
    settled. ``converged`` is the models' state at the end, used for every prefix (the
    per-prefix state is not kept), so it only matters for an indistinguishable verdict."""
    course = sorted(course, key=lambda p: p.iteration)
    judged = [
        settle(course[: k + 1], verdicts[k], higher_is_better, inside_margin[k], converged)
        for k in range(len(course))
    ]
    final = judged[-1]
    if not final.settled:
        return None
    since = final.iteration
    for j in reversed(judged):
        if j.verdict != final.verdict:
            break
        since = j.iteration
    return since
