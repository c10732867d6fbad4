"""The comparison table: is the flow prior better than each baseline, and by how much?
(docs/method.md §9, §9.1, §9.2)

For every experiment × task condition (anomalies: a held-out digit or a folder's; dataset;
mask) × metric, LFBM minus each baseline (ABP, LEBM, 2s-ABP): the difference of the seed
means, and as a share of the baseline, with a simultaneous 95% interval (Bonferroni within
experiment × baseline, from a bootstrap paired over the same test examples, FID over each
model's generated samples, that also resamples seeds when there are several); the same at
every budget of the comparison's course (the runs' snapshots); and a verdict for the flow
prior at its budget once it has settled on that course (:func:`lsnf.analysis.course.settle`), else
"undecided (not settled: ...)", "failed to train: ..." or "undecided (fewer than 2 seeds:
...)" (:func:`lsnf.training.convergence.verdict_for`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsnf import layout
from lsnf.analysis.course import CoursePoint, settle, settled_since
from lsnf.analysis.measurements import failure_text
from lsnf.analysis.replicates import Replicates, statistic_of
from lsnf.config import MODEL_KINDS, MODEL_NAMES
from lsnf.errors import UserError
from lsnf.evaluation.registry import EVALUATIONS, Evaluation, Value
from lsnf.metrics.stats import VERDICTS, Difference, bonferroni_z, difference_interval, verdict
from lsnf.training.convergence import CONVERGED, FAILED, MIN_SEEDS, verdict_for

__all__ = [
    "BASELINES",
    "comparison_table",
    "course_display",
    "course_files",
    "main_result",
    "verdict_summary",
    "versus_table",
]

FLOW = "flow"
BASELINES = {k: MODEL_NAMES[k] for k in MODEL_KINDS if k != FLOW}  # model kind -> short name


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


def main_result(result_file: str | Path) -> Path:
    """The result whose course holds ``result_file`` (itself, unless it is a snapshot's result,
    ``course/epoch-NNNN/<name>`` beside it: layout.course_result)."""
    p = Path(result_file)
    return p.parent.parent.parent / p.name if p.parent.parent.name == "course" else p


def course_files(result_file: str | Path, budget: int | None = None) -> dict[int, str]:
    """Learning iterations -> result file of a result's course (docs/method.md §9.1), up to
    ``budget`` iterations (None: all): its snapshots' results as its course index lists them,
    and the result itself. A result without a course index (an evaluation run without
    ``--course``) is its only point; ``result_file`` may be one of a course's points."""
    from lsnf.io import read_json

    record = read_json(result_file)
    out = {int((record.get("training") or {}).get("iterations") or 0): str(result_file)}
    index = Path(layout.course_index(str(main_result(result_file))))
    if index.is_file():
        for point in read_json(index)["points"]:
            out.setdefault(int(point["iteration"]), str(index.parent / point["file"]))
    return {it: f for it, f in out.items() if budget is None or it <= budget}


def _difference(
    reps: Replicates,
    evaluation: str,
    value: Value,
    files_a: list[str],
    files_b: list[str],
    paired: bool,
) -> tuple[Difference, np.ndarray, np.ndarray]:
    """``a − b`` of ``value`` over the results ``files_a`` and ``files_b`` (one per seed), and
    each side's recomputed values (eq. 9.4)."""
    from lsnf.io import read_json

    col = value.column

    def runs(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        out = [reps.of(f, evaluation, col, read_json(f)[col]) for f in files]
        return np.stack([o[1] for o in out]), np.array([o[0] for o in out])

    if paired:
        _check_same_examples(reps, [*files_a, *files_b])
    (ra, pa), (rb, pb) = runs(files_a), runs(files_b)
    return difference_interval(ra, rb, pa, pb, value.higher_is_better), pa, pb


def _state(sides: dict[str, list[str]]) -> str:
    """The models' convergence at the end, in words, for a verdict's budget text."""
    done = [name for name, statuses in sides.items() if set(statuses) == {CONVERGED}]
    if len(done) == len(sides):
        return "both converged"
    if not done:
        return "neither model converged"
    rest = [name for name in sides if name not in done]
    return f"{', '.join(done)} converged, {', '.join(rest)} not"


def _compare(
    reps: Replicates,
    evaluation: str,
    value: Value,
    flow: pd.DataFrame,
    base: pd.DataFrame,
    names: tuple[str, str],
    min_seeds: int,
    family: int,
    budget: int | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One comparison row (docs/method.md §9, §9.1, §9.2) and its course rows; ``family``: the
    number of comparisons its simultaneous interval is corrected for; ``budget``: read the
    course up to that many iterations (the rows' files are then its points there)."""
    stat = statistic_of(evaluation, value.column)
    paired = not stat.stored  # stored: FID and its kin, over each model's generated samples
    higher, z = value.higher_is_better, bonferroni_z(family)

    def adjusted(d: Difference) -> tuple[float, float, str, bool]:
        """The simultaneous interval, its verdict, and whether it lies inside the margin."""
        lo, hi = d.estimate - z * d.se, d.estimate + z * d.se
        rel_lo, rel_hi = d.relative - z * d.rel_se, d.relative + z * d.rel_se
        return lo, hi, verdict(lo, hi, higher), -stat.margin < rel_lo and rel_hi < stat.margin

    final = (list(flow["file"]), list(base["file"]))
    courses = [course_files(f, budget) for f in [*final[0], *final[1]]]
    # the budgets every model has; models trained to different budgets (two experiments of a
    # versus table) share none, and are compared at their ends only, which settles nothing
    budgets = sorted(set.intersection(*(set(c) for c in courses)))
    end = max(budgets) if budgets else max(max(c) for c in courses)
    points, verdicts, inside, course_rows = [], [], [], []
    for it in budgets:
        files = [c[it] for c in courses]
        at = _difference(reps, evaluation, value, files[: len(flow)], files[len(flow) :],
                         paired)  # fmt: skip
        d = at[0]
        lo, hi, v, eq = adjusted(d)
        points.append(CoursePoint(it, d.estimate, d.se))
        verdicts.append(v)
        inside.append(eq)
        course_rows.append(
            {"iteration": it, "difference": d.estimate, "lo": lo, "hi": hi, "se": d.se,
             "relative": d.relative, "interval_verdict": v}
        )  # fmt: skip
    # the last budget is the end itself: its difference is the row's (else: the ends alone)
    d, pa, pb = at if budgets else _difference(reps, evaluation, value, *final, paired)
    lo, hi, interval_verdict, eq = adjusted(d)
    if not budgets:
        points, verdicts, inside = [CoursePoint(end, d.estimate, d.se)], [interval_verdict], [eq]
    n = int(flow["n"].iloc[0])
    how = (
        f"paired bootstrap over the same {n} test examples"
        if paired
        else f"bootstrap over each model's {n} generated samples"
    )
    if len(flow) > 1 or len(base) > 1:
        how += " and over seeds"
    sides = dict(zip(names, (_statuses(flow, value), _statuses(base, value)), strict=True))
    converged = all(set(v) == {CONVERGED} for v in sides.values())
    settled = settle(points, interval_verdict, higher, eq, converged)
    since = None
    verdict_text = verdict_for(sides, "", min_seeds)  # failed to train, too few seeds, or ""
    if not verdict_text and settled.settled:
        since = settled_since(points, verdicts, higher, inside, converged)
        verdict_text = f"{settled.verdict} at {end} iterations (settled since {since}; " + (
            f"{_state(sides)})"
        )
    elif not verdict_text:
        verdict_text = settled.verdict
    row = {
        "a": float(pa.mean()),
        "b": float(pb.mean()),
        "difference": d.estimate,
        "lo": lo,
        "hi": hi,
        "relative": d.relative,
        "rel_lo": d.relative - z * d.rel_se,
        "rel_hi": d.relative + z * d.rel_se,
        "lo95": d.lo,
        "hi95": d.hi,
        "verdict": verdict_text,
        "interval_verdict": interval_verdict,
        "iterations": end,
        "settled_since": since,
        "settle_reason": settled.reason,
        "projected_2E": settled.projected,
        "projection_noise": settled.noise,
        "course_points": len(points),
        "convergence": "; ".join(f"{k}: {', '.join(sorted(set(v)))}" for k, v in sides.items()),
        "seeds": f"{len(flow)} vs {len(base)}",
        "interval": (
            f"simultaneous 95%: Bonferroni over the {family} comparisons of its family, "
            f"±{z:.2f} bootstrap SE; {how} "
            f"({reps.replicates if paired else 'stored'} resamples)"
        ),
        "margin": stat.margin,
        "better": "higher" if higher else "lower",
    }
    return row, course_rows


def _failed_to_train(names: tuple[str, str], a: pd.DataFrame, b: pd.DataFrame) -> str:
    """ "failed to train: LFBM (non-finite generator loss at epoch 3)" when a model of either
    side failed to train (its results record why, docs/method.md §6.7); "" otherwise."""
    why = {name: failure_text(rows) for name, rows in zip(names, (a, b), strict=True)}
    parts = [f"{name} ({text})" for name, text in why.items() if text]
    return f"{FAILED}: {', '.join(parts)}" if parts else ""


def _failed_row(
    evaluation: str, value: Value, why: str, a: pd.DataFrame, b: pd.DataFrame
) -> dict[str, Any]:
    """A comparison row without numbers: a side failed to train (``why``)."""
    nan = float("nan")
    numbers = ("a", "b", "difference", "lo", "hi", "relative", "rel_lo", "rel_hi", "lo95", "hi95",
               "projected_2E", "projection_noise")  # fmt: skip
    return {
        **dict.fromkeys(numbers, nan),
        "verdict": why,
        "interval_verdict": "",
        "iterations": None,
        "settled_since": None,
        "settle_reason": "no course: a model failed to train",
        "course_points": 0,
        "convergence": "",
        "seeds": f"{len(a)} vs {len(b)}",
        "interval": "",
        "margin": statistic_of(evaluation, value.column).margin,
        "better": "higher" if value.higher_is_better else "lower",
    }


def _compare_sides(
    reps: Replicates,
    df: pd.DataFrame,
    group: str,
    side: str,
    sides: list[tuple[Any, Any, str]],
    setting: Callable[[pd.DataFrame, pd.DataFrame], str],
    sort: bool,
    min_seeds: int,
    budget: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For every evaluation with values, every (``group``, condition) of its results and every
    (a, b, title) of ``sides`` (values of the column ``side``): the rows of a − b, and their
    course rows. Each (``group``, title) is one family of simultaneous intervals (§9.2)."""
    todo = []
    for ev in _compared():
        m = df[(df["evaluation"] == ev.name) & df[side].isin({x for s in sides for x in s[:2]})]
        for (key, cond), g in m.groupby([group, ev.condition], sort=sort):
            for a_side, b_side, title in sides:
                a = g[g[side] == a_side].sort_values("seed")
                b = g[g[side] == b_side].sort_values("seed")
                if a.empty or b.empty:
                    continue
                condition = ev.condition_text.format(cond)
                head = {"evaluation": ev.name, group: key, "condition": condition,
                        "comparison": title}  # fmt: skip
                todo += [(head, ev, v, a, b) for v in ev.values]
    failed = [
        _failed_to_train(tuple(h["comparison"].split(" − ", 1)), a, b) for h, _, _, a, b in todo
    ]
    # the family of simultaneous intervals: the comparisons that have an interval
    family = Counter(
        (h[group], h["comparison"]) for (h, *_), f in zip(todo, failed, strict=True) if not f
    )
    numeric, course = [], []
    for (head, ev, v, a, b), why in zip(todo, failed, strict=True):
        names = tuple(head["comparison"].split(" − ", 1))
        size = family[(head[group], head["comparison"])]
        if why:
            row, points = _failed_row(ev.name, v, why, a, b), []
        else:
            row, points = _compare(reps, ev.name, v, a, b, names, min_seeds, size, budget)
        numeric.append(
            {**head, "metric": v.label, **row, "setting": setting(a, b), "digits": v.digits}
        )
        course += [{**head, "metric": v.label, **p, "digits": v.digits} for p in points]
    return numeric, course


def comparison_table(
    df: pd.DataFrame,
    reps: Replicates,
    setting: Any,
    min_seeds: int = MIN_SEEDS,
    budget: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """LFBM − each baseline for every experiment, condition and metric the results hold
    (``setting``: a group of measurements -> its setting text; ``min_seeds``: seeds per side
    before a verdict; ``budget``: the comparison had training stopped there, ``df`` being the
    measurements of the course's points at that budget): (numeric, display, course), the course
    one row per comparison and budget (docs/method.md §9.1)."""
    sides = [(FLOW, kind, f"{MODEL_NAMES[FLOW]} − {short}") for kind, short in BASELINES.items()]
    both = lambda a, b: setting(pd.concat([a, b]))
    numeric, course = _compare_sides(
        reps, df, "experiment", "prior", sides, both, True, min_seeds, budget
    )
    num = pd.DataFrame(numeric).rename(columns={"a": "flow", "b": "baseline"})
    table = _split_digits(
        num,
        ["evaluation", "experiment", "condition"],
        {"flow": MODEL_NAMES[FLOW], "baseline": "baseline"},
    )
    return (*table, pd.DataFrame(course))


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
                                  [(exp_a, exp_b, f"{exp_a} − {exp_b}")], each, False,
                                  min_seeds)[0]
    ]  # fmt: skip
    num = pd.DataFrame(numeric)
    return _split_digits(num, ["evaluation", "prior", "condition"], {"a": "A", "b": "B"})


def verdict_summary(num: pd.DataFrame) -> str:
    """The comparison table's answer in one line: how many verdicts it gives (better, worse,
    indistinguishable, each at its budget), and how many it withholds, by reason
    (docs/method.md §9, §9.1)."""
    if num.empty:
        return ""
    kind = lambda v: next((k for k in VERDICTS if v.startswith(k)), None)
    given = num["verdict"].map(kind)
    counts = given.value_counts()
    decided = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    reasons = (
        num.loc[given.isna(), "verdict"]
        .str.replace(rf"^({FAILED}):.*$", r"\1", regex=True)  # "failed to train: LFBM (...)"
        .str.replace(r":[^)]*", "", regex=True)  # "undecided (not settled: ...)"
    )
    withheld = [f"{n} {r}" for r, n in reasons.value_counts().items()]
    tail = f"; no verdict: {', '.join(withheld)}" if withheld else ""
    return f"**{len(num)} comparisons: {decided}{tail}** (docs/method.md §9.1)."


def course_display(course: pd.DataFrame) -> pd.DataFrame:
    """Display strings of the course table: each comparison's difference and simultaneous
    interval at every budget (docs/method.md §9.1)."""
    if course.empty:
        return course
    fmt = lambda v, k: f"{v:+.{k}f}"
    rows = zip(course["difference"], course["lo"], course["hi"], course["digits"], strict=True)
    return pd.DataFrame(
        {
            **{h: course[h] for h in ("evaluation", "experiment", "condition", "metric")},
            "comparison": course["comparison"],
            "learning iterations": course["iteration"],
            "difference [simultaneous 95% CI]": [
                f"{fmt(d, k)} [{fmt(lo, k)}, {fmt(hi, k)}]" for d, lo, hi, k in rows
            ],
            "% of baseline": [
                f"{100 * r:+.1f}%" if np.isfinite(r) else "n/a" for r in course["relative"]
            ],
            "interval alone": course["interval_verdict"],
        }
    )


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
    none = "—"  # a comparison whose model failed to train has no numbers
    shown = {
        title: [none if pd.isna(v) else f"{v:.{k}f}" for v, k in zip(num[col], digits, strict=True)]
        for col, title in values.items()
    }
    return pd.DataFrame(
        {
            **{h: num[h] for h in head},
            "metric": num["metric"] + " (" + num["better"] + " is better)",
            "comparison": num["comparison"],
            **shown,
            "difference [simultaneous 95% CI]": [
                none if pd.isna(d) else f"{fmt(d, k)} [{fmt(lo, k)}, {fmt(hi, k)}]"
                for d, lo, hi, k in zip(
                    num["difference"], num["lo"], num["hi"], digits, strict=True
                )
            ],
            "% of baseline [CI]": [
                f"{100 * r:+.1f}% [{100 * lo:+.1f}%, {100 * hi:+.1f}%]"
                if np.isfinite([r, lo, hi]).all()
                else none
                if pd.isna(d)
                else "n/a (baseline 0)"
                for r, lo, hi, d in zip(
                    num["relative"], num["rel_lo"], num["rel_hi"], num["difference"], strict=True
                )
            ],
            f"verdict for {next(iter(values.values()))}": num["verdict"],
            "course": [
                why if pd.isna(e) else f"{n} point(s) to {int(e)}: {why}"
                for n, e, why in zip(
                    num["course_points"], num["iterations"], num["settle_reason"], strict=True
                )
            ],
            "training": num["convergence"],
            "seeds": num["seeds"],
            "interval": num["interval"],
            "setting": num["setting"],
        }
    )
