"""The settled-verdict rule (docs/method.md §9.1) on constructed courses, and the Bonferroni
quantile of §9.2."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lsnf.analysis.course import MIN_POINTS, CoursePoint, settle, settled_since
from lsnf.metrics.stats import bonferroni_z
from lsnf.training.train import snapshot_epochs


def _course(values: list[float], se: float = 1.0, step: int = 100) -> list[CoursePoint]:
    return [CoursePoint(step * (k + 1), v, se) for k, v in enumerate(values)]


def test_snapshot_epochs_are_even_distinct_and_end_at_the_model() -> None:
    assert snapshot_epochs(24, 8) == [3, 6, 9, 12, 15, 18, 21, 24]
    assert snapshot_epochs(2, 8) == [1, 2]
    assert snapshot_epochs(10, 0) == []
    for epochs, snaps in [(24, 7), (21, 8), (5, 3)]:
        got = snapshot_epochs(epochs, snaps)
        assert got[-1] == epochs and got == sorted(set(got)) and got[0] >= 1


def test_a_held_sign_with_a_growing_gap_settles() -> None:
    rng = np.random.default_rng(0)
    values = [-5.0 - 6.0 * k + rng.normal(0, 0.5) for k in range(8)]  # FID gap widening
    s = settle(_course(values), "better", False, False, False)
    assert s.settled and s.verdict == "better"
    assert s.points == 5  # iterations 400..800 of a course ending at 800
    assert s.projected < -s.noise < 0  # projected to 1600, beyond its noise


def test_a_projected_crossing_does_not_settle() -> None:
    values = [60.0, 52.0, 44.0, 36.0, 28.0, 20.0, 12.0, 6.0]  # shrinking towards 0
    s = settle(_course(values), "worse", False, False, False)
    assert not s.settled
    assert s.verdict.startswith("undecided (not settled:") and "across zero" in s.verdict


def test_a_flip_at_the_last_snapshot_does_not_settle() -> None:
    values = [9.0, 8.0, 8.5, 7.0, 6.0, 5.0, 4.0, -3.0]
    s = settle(_course(values), "better", False, False, False)
    assert not s.settled and "other sign at 700 iterations" in s.verdict


def test_a_sign_change_in_the_last_half_does_not_settle() -> None:
    values = [-1.0, -2.0, -3.0, 2.0, -5.0, -6.0, -7.0, -8.0]
    s = settle(_course(values), "better", False, False, False)
    assert not s.settled and "other sign at 400 iterations" in s.verdict


def test_a_trend_within_its_noise_does_not_settle() -> None:
    values = [-1.0, -1.2, -0.9, -1.1, -1.0, -1.05, -0.95, -1.0]  # flat, se 1
    s = settle(_course(values, se=1.0), "better", False, False, False)
    assert not s.settled and "within its noise" in s.verdict
    # the points' own standard error is a floor on the noise: a tight fit does not hide it
    assert s.noise > 1.0


def test_too_few_points_do_not_settle() -> None:
    s = settle(_course([-10.0, -20.0, -30.0]), "better", False, False, False)
    assert not s.settled and f"fewer than {MIN_POINTS}" in s.verdict
    assert math.isnan(s.projected)


def test_indistinguishable_settles_by_margin_or_convergence_only() -> None:
    course = _course([0.1, -0.1, 0.05, 0.0])
    assert settle(course, "indistinguishable", False, True, False).verdict == "indistinguishable"
    assert settle(course, "indistinguishable", False, False, True).verdict == "indistinguishable"
    s = settle(course, "indistinguishable", False, False, False)
    assert not s.settled and "equivalence margin" in s.verdict


def test_settled_since_is_the_first_budget_of_an_unbroken_run() -> None:
    values = [3.0, 1.0, -2.0, -6.0, -10.0, -14.0, -18.0, -22.0, -26.0, -30.0, -34.0, -38.0]
    course = _course(values, se=0.5)
    verdicts = ["better" if v < 0 else "worse" for v in values]
    since = settled_since(course, verdicts, False, [False] * len(values), False)
    assert since is not None and 400 < since <= 1200
    # every prefix from `since` on settles; the one before it does not
    for k, p in enumerate(course):
        if p.iteration >= since:
            assert settle(course[: k + 1], verdicts[k], False, False, False).settled
    before = [k for k, p in enumerate(course) if p.iteration < since][-1]
    assert not settle(course[: before + 1], verdicts[before], False, False, False).settled
    # a course whose end does not settle has no "since"
    assert settled_since(course[:3], verdicts[:3], False, [False] * 3, False) is None


@pytest.mark.parametrize(("family", "z"), [(1, 1.959964), (5, 2.575829), (10, 2.807034)])
def test_bonferroni_quantile(family: int, z: float) -> None:
    assert bonferroni_z(family) == pytest.approx(z, abs=1e-5)


def test_the_projection_is_the_least_squares_line_at_twice_the_budget() -> None:
    """An independent computation of d̂(2E) and its noise bound (eq. 9.6) on a known course."""
    from scipy import stats

    values = [-4.0, -7.0, -9.5, -12.0, -15.5, -17.0, -21.0, -23.5]
    course = _course(values, se=0.3)
    s = settle(course, "better", False, False, False)
    x = np.arange(400, 801, 100.0)
    y = np.array(values[3:])
    fit = stats.linregress(x, y)
    projected = fit.intercept + fit.slope * 1600
    resid = y - (fit.intercept + fit.slope * x)
    sd = max(math.sqrt((resid @ resid) / (len(x) - 2)), 0.3)
    se = sd * math.sqrt(1 / len(x) + (1600 - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    assert s.projected == pytest.approx(projected)
    assert s.noise == pytest.approx(stats.t.ppf(0.95, len(x) - 2) * se)
