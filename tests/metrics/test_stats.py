"""The statistics behind intervals and comparisons (lsnf.metrics.stats), on cases with known
answers."""

import numpy as np
import pytest
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score

from lsnf.metrics import stats


def _data(n=300, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.35
    scores = rng.normal(size=n) + 0.8 * labels
    if ties:
        scores = np.round(scores, 1)  # many tied scores
    return scores, labels


def _sk_auprc(s, y):
    p, r, _ = precision_recall_curve(y, s)
    return auc(r, p)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_curves_equal_scikit_learn_on_the_resampled_set(ties):
    scores, labels = _data(ties=ties)
    w = stats.resample_weights(len(scores), 5, seed=3)  # (5, n)
    assert np.all(w.sum(axis=1) == len(scores))
    assert np.isclose(
        stats.weighted_auprc(scores, labels, np.ones((1, len(scores))))[0],
        _sk_auprc(scores, labels),
        atol=1e-12,
    )
    assert np.isclose(
        stats.weighted_auroc(scores, labels, np.ones((1, len(scores))))[0],
        roc_auc_score(labels, scores),
        atol=1e-12,
    )
    for row, b_pr, b_roc in zip(
        w,
        stats.weighted_auprc(scores, labels, w),
        stats.weighted_auroc(scores, labels, w),
        strict=True,
    ):
        idx = np.repeat(np.arange(len(scores)), row.astype(int))  # the resampled data set
        assert np.isclose(b_pr, _sk_auprc(scores[idx], labels[idx]), atol=1e-12)
        assert np.isclose(b_roc, roc_auc_score(labels[idx], scores[idx]), atol=1e-12)


def test_bootstrap_interval_of_a_mean_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 1.0, size=400)
    iv = stats.bootstrap_interval(stats.STATISTICS["mse"], {"mse": x})
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert iv.kind == "bootstrap"
    assert iv.lo < x.mean() < iv.hi
    assert abs((iv.hi - iv.lo) / 2 - half) < 0.1 * half
    # deterministic: the same call gives the same interval
    assert iv == stats.bootstrap_interval(stats.STATISTICS["mse"], {"mse": x})


def test_seed_interval_is_the_student_t_interval():
    mean, std, iv = stats.seed_interval([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0)
    assert np.isclose(iv.hi - mean, 4.302652729911275 / np.sqrt(3))
    assert stats.seed_interval([0.5])[2] is None


def _paired(stat: stats.Statistic, a: list[dict], b: list[dict]) -> stats.Difference:
    """``stat(a) - stat(b)`` over runs on the same n examples: replicates drawn with the same
    weights for both sides (the pairing), then :func:`lsnf.metrics.stats.difference_interval`."""
    w = stats.resample_weights(len(a[0][stat.columns[0]]), stats.REPLICATES)  # (B, n)
    ra, rb = (np.stack([stat(r, w) for r in runs]) for runs in (a, b))  # (R, B)
    pa, pb = (np.array([stat(r)[0] for r in runs]) for runs in (a, b))  # (R,)
    return stats.difference_interval(ra, rb, pa, pb, stat.higher_is_better)


def test_identical_runs_differ_by_an_interval_containing_zero():
    scores, labels = _data()
    run = {"score": scores, "label": labels}
    d = _paired(stats.STATISTICS["auprc"], [run], [dict(run)])
    assert d.estimate == 0 and d.lo <= 0 <= d.hi and d.verdict == "indistinguishable"


def test_a_clearly_better_score_is_better_and_the_worse_one_worse():
    _, labels = _data(ties=False)
    rng = np.random.default_rng(2)
    good = {"score": labels + 0.3 * rng.normal(size=len(labels)), "label": labels}
    bad = {"score": rng.normal(size=len(labels)), "label": labels}
    for name in ("auprc", "auroc"):
        assert _paired(stats.STATISTICS[name], [good], [bad]).verdict == "better"
        assert _paired(stats.STATISTICS[name], [bad], [good]).verdict == "worse"
    # lower is better for an error
    err = rng.exponential(size=500)
    d = _paired(stats.STATISTICS["mse"], [{"mse": err * 0.5}], [{"mse": err}])
    assert d.estimate < 0 and d.verdict == "better"


def test_pairing_finds_a_small_consistent_difference_that_unpaired_cells_overlap():
    rng = np.random.default_rng(4)
    base = rng.exponential(size=1000)  # large spread between examples
    a, b = {"mse": base}, {"mse": base + 0.02}  # b is worse on every example by 0.02
    d = _paired(stats.STATISTICS["mse"], [a], [b])
    assert d.verdict == "better" and np.isclose(d.estimate, -0.02)
    ia = stats.bootstrap_interval(stats.STATISTICS["mse"], a)
    ib = stats.bootstrap_interval(stats.STATISTICS["mse"], b)
    assert ia.hi > ib.lo  # the two cells' own intervals overlap


def test_seed_variation_widens_the_interval():
    rng = np.random.default_rng(5)
    base = rng.exponential(size=500)
    # every seed of a is better than its b on the examples, but seeds differ by much more
    a = [{"mse": base + s} for s in (0.0, 0.6, -0.5)]
    b = [{"mse": base + s + 0.02} for s in (0.5, -0.4, 0.0)]
    d = _paired(stats.STATISTICS["mse"], a, b)
    assert d.verdict == "indistinguishable"
    one = _paired(stats.STATISTICS["mse"], a[:1], b[:1])
    assert one.hi - one.lo < (d.hi - d.lo) / 10


def test_verdict_follows_the_metric_direction():
    assert stats.verdict(0.1, 0.2, higher_is_better=True) == "better"
    assert stats.verdict(0.1, 0.2, higher_is_better=False) == "worse"
    assert stats.verdict(-0.2, -0.1, higher_is_better=False) == "better"
    assert stats.verdict(-0.1, 0.1, higher_is_better=True) == "indistinguishable"


def test_fid_bootstrap_replicates_are_the_fid_of_each_resample():
    import torch

    from lsnf.metrics.fid import bootstrap_fid, feature_statistics, frechet_distance

    g = torch.Generator().manual_seed(0)
    feats = torch.randn(150, 6, generator=g) @ torch.randn(6, 6, generator=g)  # (n, F)
    ref = feature_statistics(torch.randn(400, 6, generator=g) * 1.5 + 0.3)
    reps = bootstrap_fid(feats, ref, replicates=4, seed=2)
    w = stats.resample_weights(150, 4, seed=2)
    for b in range(4):
        idx = torch.from_numpy(np.repeat(np.arange(150), w[b].astype(int)))
        expected = frechet_distance(feature_statistics(feats[idx]), ref)  # torch-fidelity's FID
        assert reps[b] == pytest.approx(expected, rel=1e-6)
