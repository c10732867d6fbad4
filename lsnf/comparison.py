"""The comparison table: is the flow prior better than each baseline, and by how much?
(docs/method.md §9)

For every experiment × task condition (anomalies: a held-out digit or a folder's; dataset;
mask) × metric, the flow prior minus the Gaussian prior and minus the EBM prior: the
difference of the seed means, a 95% interval from a bootstrap paired over the same test
examples (FID: over each model's generated samples, which are independent) that also resamples
seeds when there are several, and a verdict for the flow prior: better / worse /
indistinguishable where both sides' models have converged and each side has at least
``min_seeds`` seeds (2 by default), else "undecided (not converged: ...)", "failed to train:
..." or "undecided (fewer than 2 seeds: ...)" (:func:`lsnf.convergence.verdict_for`,
docs/method.md §6.5, §9).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lsnf.convergence import FAILED, MIN_SEEDS, verdict_for
from lsnf.errors import UserError
from lsnf.registry import EVALUATIONS, Evaluation, Value
from lsnf.replicates import Replicates, statistic_of
from lsnf.stats import VERDICTS, difference_interval

__all__ = ["BASELINES", "comparison_table", "verdict_summary", "versus_table"]

FLOW = "flow"
BASELINES = {"gaussian": "ABP", "ebm": "LEBM", "abp2s": "2s-ABP"}  # model kind -> short name
_CONDITION = {
    "anomalies": "{}",
    "dataset": "{}",
    "extractor": "FID[{}]",
    "mask": "mask {}",
}  # a condition column of lsnf.registry -> its text


def _condition(col: str, value: Any) -> str:
    return _CONDITION[col].format(value)


def _compared() -> list[Evaluation]:
    """The evaluations with values to compare, in registry order."""
    return [e for e in EVALUATIONS.values() if e.values]


def _check_same_examples(reps: Replicates, files: list[str]) -> None:
    """Paired runs must be scored on the same examples (same count and labels)."""
    first = reps.examples(files[0])
    for f in files[1:]:
        other = reps.examples(f)
        same = len(other) == len(first) and all(
            np.array_equal(other[c].to_numpy(), first[c].to_numpy())
            for c in ("example", "label")
            if c in first
        )
        if not same:
            raise UserError(
                f"{f} and {files[0]} were not scored on the same test examples, so "
                f"they cannot be compared pairwise; rerun both with the same "
                f"evaluation settings"
            )


def _statuses(rows: pd.DataFrame, value: Value) -> list[str]:
    """Each model's convergence status (one per seed), "failed to train" where its result is no
    better than the trivial reference recorded for ``value`` (docs/method.md §6.5)."""
    out = []
    for _, r in rows.iterrows():
        trivial = r.get(f"trivial_{value.column}")
        v = r[value.column]
        failed = (
            trivial is not None
            and not pd.isna(trivial)
            and (v <= trivial if value.higher_is_better else v >= trivial)
        )
        out.append(FAILED if failed else r.get("convergence"))
    return out


def _compare(
    reps: Replicates,
    evaluation: str,
    value: Value,
    flow: pd.DataFrame,
    base: pd.DataFrame,
    names: tuple[str, str],
    min_seeds: int,
) -> dict[str, Any]:
    col = value.column

    def runs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        out = [reps.of(r["file"], evaluation, col, r[col]) for _, r in rows.iterrows()]
        return np.stack([o[1] for o in out]), np.array([o[0] for o in out])

    paired = not statistic_of(evaluation, col).stored  # stored: FID, over generated samples
    if paired:
        _check_same_examples(reps, [*flow["file"], *base["file"]])
    (ra, pa), (rb, pb) = runs(flow), runs(base)
    higher = value.higher_is_better
    d = difference_interval(ra, rb, pa, pb, higher)
    n = int(flow["n"].iloc[0])
    how = (
        f"paired bootstrap over the same {n} test examples"
        if paired
        else f"bootstrap over each model's {n} generated samples"
    )
    if len(flow) > 1 or len(base) > 1:
        how += " and over seeds"
    sides = dict(zip(names, (_statuses(flow, value), _statuses(base, value)), strict=True))
    return {
        "a": float(pa.mean()),
        "b": float(pb.mean()),
        "difference": d.estimate,
        "lo": d.lo,
        "hi": d.hi,
        "verdict": verdict_for(sides, d.verdict, min_seeds),
        "interval_verdict": d.verdict,
        "convergence": "; ".join(f"{k}: {', '.join(sorted(set(v)))}" for k, v in sides.items()),
        "seeds": f"{len(flow)} vs {len(base)}",
        "interval": f"95% CI, {how} ({ra.shape[1]} resamples)",
        "better": "higher" if higher else "lower",
    }


def _rows(
    reps: Replicates,
    ev: Evaluation,
    a: pd.DataFrame,
    b: pd.DataFrame,
    head: dict[str, Any],
    setting: str,
    min_seeds: int,
) -> list[dict[str, Any]]:
    """One row per value of ``ev``: ``head``, the value's label, ``a − b`` and ``setting``."""
    names = tuple(head["comparison"].split(" − ", 1))
    return [
        {
            **head,
            "metric": v.label,
            **_compare(reps, ev.name, v, a, b, names, min_seeds),
            "setting": setting,
            "digits": v.digits,
        }
        for v in ev.values
    ]


def _compare_sides(
    reps: Replicates,
    df: pd.DataFrame,
    group: str,
    side: str,
    sides: list[tuple[Any, Any, str]],
    setting: Callable[[pd.DataFrame, pd.DataFrame], str],
    sort: bool,
    min_seeds: int,
) -> list[dict[str, Any]]:
    """For every evaluation with values, every (``group``, condition) of its results and every
    (a, b, title) of ``sides`` (values of the column ``side``): the rows of a − b."""
    numeric: list[dict[str, Any]] = []
    for ev in _compared():
        m = df[(df["evaluation"] == ev.name) & df[side].isin({x for s in sides for x in s[:2]})]
        for (key, cond), g in m.groupby([group, ev.condition], sort=sort):
            for a_side, b_side, title in sides:
                a = g[g[side] == a_side].sort_values("seed")
                b = g[g[side] == b_side].sort_values("seed")
                if a.empty or b.empty:
                    continue
                condition = _condition(ev.condition, cond)
                head = {"evaluation": ev.name, group: key, "condition": condition,
                        "comparison": title}  # fmt: skip
                numeric += _rows(reps, ev, a, b, head, setting(a, b), min_seeds)
    return numeric


def comparison_table(
    df: pd.DataFrame, reps: Replicates, setting: Any, min_seeds: int = MIN_SEEDS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flow − Gaussian and flow − EBM for every experiment, condition and metric the results
    hold (``setting``: a group of measurements -> its setting text; ``min_seeds``: seeds per
    side before a verdict): (numeric, display)."""
    sides = [(FLOW, kind, f"LFBM − {short}") for kind, short in BASELINES.items()]
    both = lambda a, b: setting(pd.concat([a, b]))
    numeric = _compare_sides(reps, df, "experiment", "prior", sides, both, True, min_seeds)
    num = pd.DataFrame(numeric).rename(columns={"a": "flow", "b": "baseline"})
    return _split_digits(
        num, ["evaluation", "experiment", "condition"], {"flow": "LFBM", "baseline": "baseline"}
    )


def versus_table(
    df: pd.DataFrame,
    reps: Replicates,
    pairs: list[tuple[str, str]],
    setting: Any,
    min_seeds: int = MIN_SEEDS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experiment A − experiment B for each pair, prior, condition and metric: two runs of one
    protocol that differ in a setting (precision, K_test, ...), paired over the same test
    examples and seeds (docs/method.md §9): (numeric, display)."""
    each = lambda a, b: f"A: {setting(a)} | B: {setting(b)}"
    numeric = [
        row
        for exp_a, exp_b in pairs
        for row in _compare_sides(reps, df, "prior", "experiment",
                                  [(exp_a, exp_b, f"{exp_a} − {exp_b}")], each, False, min_seeds)
    ]  # fmt: skip
    num = pd.DataFrame(numeric)
    return _split_digits(num, ["evaluation", "prior", "condition"], {"a": "A", "b": "B"})


def verdict_summary(num: pd.DataFrame) -> str:
    """The comparison table's answer in one line: how many verdicts it gives (better, worse,
    indistinguishable), and how many it withholds, by reason (docs/method.md §6.5, §9)."""
    if num.empty:
        return ""
    reasons = num["verdict"].str.replace(r":[^)]*", "", regex=True)  # without the side names
    counts = reasons.value_counts()
    decided = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    withheld = [f"{n} {r}" for r, n in counts.items() if r not in VERDICTS]
    tail = f"; no verdict: {', '.join(withheld)}" if withheld else ""
    return f"**{len(num)} comparisons: {decided}{tail}** (docs/method.md §6.5, §9)."


def _split_digits(
    num: pd.DataFrame, head: list[str], values: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric table without the rows' digits, display table shown with them)."""
    if num.empty:
        return num, num
    return num.drop(columns="digits"), _display(num, head, values)


def _display(num: pd.DataFrame, head: list[str], values: dict[str, str]) -> pd.DataFrame:
    """Display strings of a comparison table; ``values``: numeric column -> title of the two
    compared values (the first is the one the verdict is for)."""
    digits = num["digits"]
    fmt = lambda v, k: f"{v:+.{k}f}"
    shown = {
        title: [f"{v:.{k}f}" for v, k in zip(num[col], digits, strict=True)]
        for col, title in values.items()
    }
    return pd.DataFrame(
        {
            **{h: num[h] for h in head},
            "metric": num["metric"] + " (" + num["better"] + " is better)",
            "comparison": num["comparison"],
            **shown,
            "difference [95% CI]": [
                f"{fmt(d, k)} [{fmt(lo, k)}, {fmt(hi, k)}]"
                for d, lo, hi, k in zip(
                    num["difference"], num["lo"], num["hi"], digits, strict=True
                )
            ],
            f"verdict for {next(iter(values.values()))}": num["verdict"],
            "training": num["convergence"],
            "seeds": num["seeds"],
            "interval": num["interval"],
            "setting": num["setting"],
        }
    )
