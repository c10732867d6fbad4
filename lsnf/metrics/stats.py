"""The statistics of per-example values, their intervals, and the paired difference of two
priors (docs/method.md §9); :mod:`lsnf.analysis.replicates` applies them to result files.

Everything here works on per-example values (the files every evaluation writes beside its
JSON) and numpy only, so a table cell, its interval and a comparison can be recomputed from
those files without rerunning inference.

- One run: a percentile bootstrap over test examples (:func:`bootstrap_interval`). Resamples
  are drawn as multinomial *weights* (B, n), and every statistic is computed for all B weight
  vectors at once: AUPRC and AUROC exactly as scikit-learn computes them on the resampled set
  (:func:`weighted_auprc`, :func:`weighted_auroc`), means as weighted means.
- Several seeds: mean, std and a Student-t 95% interval across seeds (:func:`seed_interval`).
- Two priors on the same test examples: a paired bootstrap of the difference
  (:func:`difference_interval`, on replicates drawn with the same weights for both, so paired):
  each replicate resamples the examples once for both priors (and, with several seeds, each
  prior's seeds with replacement), so the interval carries example and seed variation and not
  the variation the two share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONFIDENCE",
    "REPLICATES",
    "STATISTICS",
    "VERDICTS",
    "Difference",
    "Interval",
    "Statistic",
    "bonferroni_z",
    "bootstrap_interval",
    "difference_interval",
    "percentile_interval",
    "resample_weights",
    "seed_interval",
    "verdict",
    "weighted_auprc",
    "weighted_auroc",
]

CONFIDENCE = 0.95
REPLICATES = 2000  # bootstrap replicates of every interval the tables show
SEED = 0  # the bootstrap's seed: tables are deterministic
VERDICTS = ("better", "worse", "indistinguishable")  # what an interval can say (:func:`verdict`)

Columns = dict[str, np.ndarray]  # per-example column name -> (n,) values


def resample_weights(n: int, replicates: int, seed: int = SEED) -> np.ndarray:
    """Bootstrap resamples of ``n`` examples as counts (replicates, n): row b says how often
    each example is drawn in resample b (each row sums to n)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float64)


def _groups(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts ``scores`` and the last position of each run of tied scores."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # (T,) last index of each tie group
    return order, ends


def weighted_auprc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUPRC of ``scores`` (n,) for binary ``labels`` (n,) under each weight row (B, n) -> (B,).

    Equals ``auc(recall, precision)`` of scikit-learn's ``precision_recall_curve`` on the data
    set in which example i appears ``weights[b, i]`` times (docs/method.md §7.2): thresholds
    at the distinct scores, precision 1 at recall 0, trapezoids between points. NaN for a row
    without a positive.
    """
    order, ends = _groups(scores, descending=True)
    w = weights[:, order]  # (B, n)
    y = labels[order].astype(np.float64)  # (n,)
    tp = np.cumsum(w * y, axis=1)[:, ends]  # (B, T)
    fp = np.cumsum(w * (1 - y), axis=1)[:, ends]  # (B, T)
    total = tp[:, -1:]  # (B, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / total  # (B, T)
        # a tie group no resampled example falls in repeats the previous point (zero width);
        # before the first drawn example the curve sits at its start, precision 1
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 1.0)
    r = np.concatenate([np.zeros_like(total), recall], axis=1)  # (B, T+1)
    p = np.concatenate([np.ones_like(total), precision], axis=1)  # (B, T+1)
    return (np.diff(r, axis=1) * (p[:, 1:] + p[:, :-1]) / 2).sum(axis=1)


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of ``scores`` (n,) for binary ``labels`` (n,) under each weight row (B, n) -> (B,):
    the probability that a positive outscores a negative, ties counted one half (scikit-learn's
    ``roc_auc_score`` on the resampled set)."""
    order, ends = _groups(scores, descending=False)
    w = weights[:, order]  # (B, n)
    y = labels[order].astype(np.float64)  # (n,)
    pos = np.diff(np.cumsum(w * y, axis=1)[:, ends], axis=1, prepend=0.0)  # (B, T) per group
    neg = np.diff(np.cumsum(w * (1 - y), axis=1)[:, ends], axis=1, prepend=0.0)  # (B, T)
    below = np.cumsum(neg, axis=1) - neg  # (B, T) negative weight strictly below each group
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + neg / 2)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _mean_of(column: str) -> Callable[[Columns, np.ndarray], np.ndarray]:
    def mean(values: Columns, weights: np.ndarray) -> np.ndarray:
        v = values[column].astype(np.float64)  # (n,)
        ok = np.isfinite(v)  # NaN (nothing hidden) is left out, like the recorded mean
        return (weights[:, ok] @ v[ok]) / weights[:, ok].sum(axis=1)

    mean.__name__ = f"mean_{column}"
    return mean


@dataclass(frozen=True)
class Statistic:
    """A table cell's statistic of per-example columns: ``fn(columns, weights (B, n)) -> (B,)``.
    ``higher_is_better`` decides a comparison's verdict. ``fn`` is None for a statistic that
    per-example columns do not give, whose replicates are stored with its result instead
    (FID, KID, precision: over the generated samples; recall: over the reference images).
    ``margin``: the equivalence margin, a share of the baseline's value: two priors whose
    difference's interval lies within ± margin × |baseline| are "indistinguishable" without
    converging (docs/method.md §9.1)."""

    label: str
    columns: tuple[str, ...]
    higher_is_better: bool
    fn: Callable[[Columns, np.ndarray], np.ndarray] | None
    margin: float = 0.0

    @property
    def stored(self) -> bool:
        return self.fn is None

    def __call__(self, values: Columns, weights: np.ndarray | None = None) -> np.ndarray:
        if self.fn is None:
            raise ValueError(f"{self.label} is not computed from per-example columns")
        n = len(values[self.columns[0]])
        return self.fn(values, np.ones((1, n)) if weights is None else weights)


STATISTICS: dict[str, Statistic] = {
    "auprc": Statistic(
        "AUPRC",
        ("score", "label"),
        True,
        lambda v, w: weighted_auprc(v["score"], v["label"], w),
        margin=0.02,
    ),
    "auroc": Statistic(
        "AUROC",
        ("score", "label"),
        True,
        lambda v, w: weighted_auroc(v["score"], v["label"], w),
        margin=0.01,
    ),
    "mse": Statistic("MSE", ("mse",), False, _mean_of("mse"), margin=0.02),
    "psnr": Statistic("PSNR", ("psnr",), True, _mean_of("psnr"), margin=0.01),
    "ssim": Statistic("SSIM", ("ssim",), True, _mean_of("ssim"), margin=0.01),
    "fid": Statistic("FID", ("bootstrap_fid",), False, None, margin=0.05),
    "kid": Statistic("KID", ("bootstrap_kid",), False, None, margin=0.1),
    "precision": Statistic("precision", ("bootstrap_precision",), True, None, margin=0.05),
    "recall": Statistic("recall", ("bootstrap_recall",), True, None, margin=0.05),
}


@dataclass(frozen=True)
class Interval:
    """A 95% interval and how it was obtained (``kind``: ``bootstrap`` over test examples or
    ``t`` across seeds)."""

    lo: float
    hi: float
    kind: str


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The central ``confidence`` share of bootstrap replicates (percentile interval; NaN
    replicates ignored)."""
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_interval(
    stat: Statistic, values: Columns, replicates: int = REPLICATES, seed: int = SEED
) -> Interval:
    """Percentile bootstrap interval of ``stat`` over the examples of one run."""
    n = len(values[stat.columns[0]])
    return Interval(
        *percentile_interval(stat(values, resample_weights(n, replicates, seed))), "bootstrap"
    )


def seed_interval(values: Sequence[float]) -> tuple[float, float, Interval | None]:
    """Mean, std (ddof 1) and Student-t 95% interval of per-seed values (no interval, std NaN
    for one seed)."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), None
    std = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1)) * std / np.sqrt(len(v))
    return mean, std, Interval(mean - half, mean + half, "t")


@dataclass(frozen=True)
class Difference:
    """``a - b`` of a statistic with its 95% percentile interval and verdict for ``a``; ``se``:
    the replicates' standard deviation (the bootstrap standard error, from which a corrected
    interval is built, :func:`adjusted`); ``relative``, ``rel_se``: the same difference as a
    share of ``|b|``, from the same replicates."""

    estimate: float
    lo: float
    hi: float
    verdict: str
    se: float = float("nan")
    relative: float = float("nan")
    rel_se: float = float("nan")


def bonferroni_z(family: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile of a Bonferroni interval: each of ``family`` intervals at
    ``1 - (1 - confidence) / family``, so all hold together with probability ≥ ``confidence``
    (docs/method.md §9.2)."""
    from scipy.stats import norm

    return float(norm.ppf(1 - (1 - confidence) / family / 2))


def verdict(lo: float, hi: float, higher_is_better: bool) -> str:
    """``better`` / ``worse`` for ``a`` when the interval of ``a - b`` excludes 0, else
    ``indistinguishable``."""
    better, worse, neither = VERDICTS
    if lo > 0 or hi < 0:
        return better if (lo > 0) == higher_is_better else worse
    return neither


def difference_interval(
    a: np.ndarray,
    b: np.ndarray,
    a_point: np.ndarray,
    b_point: np.ndarray,
    higher_is_better: bool,
    seed: int = SEED,
) -> Difference:
    """The difference of seed means, from replicates ``a`` (R_a, B) and ``b`` (R_b, B) of each
    seed's statistic (row = seed, column = bootstrap replicate, shared by both when paired) and
    the seeds' point values (R,) (eq. 9.4). Each replicate also resamples each side's seeds."""
    rng = np.random.default_rng(seed + 1)
    reps = a.shape[1]

    def seed_means(r: np.ndarray) -> np.ndarray:  # (B,) mean over resampled seeds
        if r.shape[0] == 1:
            return r[0]
        pick = rng.integers(0, r.shape[0], size=(reps, r.shape[0]))  # (B, R)
        return r[pick, np.arange(reps)[:, None]].mean(axis=1)

    means_a, means_b = seed_means(a), seed_means(b)  # (B,), (B,)
    diffs = means_a - means_b  # (B,)
    lo, hi = percentile_interval(diffs)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = diffs / np.abs(means_b)  # (B,)
    estimate = float(np.mean(a_point) - np.mean(b_point))
    base = float(abs(np.mean(b_point)))
    relative = estimate / base if base > 0 else float("nan")
    finite = np.isfinite(rel)
    rel_se = float(np.std(rel[finite], ddof=1)) if finite.sum() > 1 else float("nan")
    se = float(np.nanstd(diffs, ddof=1))
    return Difference(estimate, lo, hi, verdict(lo, hi, higher_is_better), se, relative, rel_se)
