"""The tables' specs (pandas): the paper's table of each task, beside the published numbers,
and the table of any other evaluation with values; each a (numeric, display) pair.

Measured rows are means ± std over seeds, with the number of seeds and the setting (dataset,
source, test images, K_test, feature extractor) stated, and a 95% interval per cell; published
rows come from ``config/paper_reference.yaml`` and unknown cells stay empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lsnf.analysis.measurements import failure_text, setting_text
from lsnf.analysis.replicates import Replicates
from lsnf.config import INCEPTION_V3, MODEL_DESCRIPTIONS, MODEL_KINDS, MODEL_NAMES
from lsnf.evaluation.registry import EVALUATIONS, TASKS, Evaluation
from lsnf.metrics.stats import REPLICATES, percentile_interval, seed_interval

__all__ = [
    "PAPER_TABLES",
    "PRIOR_NAMES",
    "anomaly_table",
    "evaluation_table",
    "generation_table",
    "inpainting_table",
    "recovery_table",
]

# a table's label of each model kind: "LFBM (flow prior)"
PRIOR_NAMES = {k: f"{MODEL_NAMES[k]} ({MODEL_DESCRIPTIONS[k]})" for k in MODEL_KINDS}
# The paper's tables, one per task, and the evaluations (lsnf.evaluation.registry) each shows. Any
# other evaluation with values gets a table of its own (evaluation_table).
PAPER_TABLES = {
    "anomaly": ("anomaly",),
    "generation": ("reconstruction", "fid"),
    "inpainting": ("inpainting",),
    "recovery": ("recovery",),
}
assert set(PAPER_TABLES) == set(TASKS), "a paper table per task of lsnf.evaluation.registry"


def _fmt(
    mean: float | None,
    std: float | None,
    digits: int = 3,
    lo: float | None = None,
    hi: float | None = None,
) -> str:
    """``mean [lo, hi]`` (one run) or ``mean ± std [lo, hi]`` (seeds); '' for no value."""
    missing = lambda v: v is None or (isinstance(v, float) and math.isnan(v))
    if missing(mean):
        return ""
    text = f"{mean:.{digits}f}" if missing(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"
    if not missing(lo) and not missing(hi):
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


IntervalSource = Callable[[pd.Series, str], "np.ndarray | None"]  # (result row, column) -> reps


def _measured(reps: Replicates) -> IntervalSource:
    """Bootstrap replicates of one result's value, from its per-example file."""
    return lambda row, col: reps.of(row["file"], row["evaluation"], col, row[col])[1]


def _floors(reps: Replicates) -> IntervalSource:
    """Replicates of a model-free score on the examples of the result in ``row`` (none for the
    random score: its AUPRC is the anomaly share, its AUROC 0.5, by expectation)."""

    def source(row: pd.Series, col: str) -> np.ndarray | None:
        if row["reference"] == "random":
            return None
        ex = reps.examples(row["file"])
        sign = -1.0 if row["reference"] == "less_ink" else 1.0
        stat = "auprc" if col == "value" else "auroc"
        return reps.of_scores(sign * ex["ink"].to_numpy(), ex["label"].to_numpy(), stat)

    return source


def _cell(cell: pd.DataFrame, col: str, source: IntervalSource | None) -> dict[str, Any]:
    """Mean, std, seed count and 95% interval of a cell's values: Student t across seeds with
    two or more, else the bootstrap of the one run (docs/method.md §9)."""
    values = cell[col].dropna()
    n = int(values.count())
    out = {
        "mean": float("nan"),
        "std": float("nan"),
        "seeds": n,
        "lo": float("nan"),
        "hi": float("nan"),
        "ci": "",
    }
    if n == 0:
        return out
    mean, std, interval = seed_interval(values.to_numpy())
    out.update(mean=mean, std=std)
    if interval is not None:
        out.update(lo=interval.lo, hi=interval.hi, ci="t")
    elif source is not None and (reps := source(cell.loc[values.index[0]], col)) is not None:
        out.update(dict(zip(("lo", "hi"), percentile_interval(reps), strict=True)), ci="bootstrap")
    return out


def _ci_text(cells: list[dict[str, Any]], g: pd.DataFrame, model_free: bool) -> str:
    """Which 95% interval the row's cells carry (docs/method.md §9)."""
    kinds = {c["ci"] for c in cells if c["ci"]}
    if not kinds:
        return ""
    fid, other = bool((g["evaluation"] == "fid").any()), bool((g["evaluation"] != "fid").any())
    fid_over = "its images (FID)" if model_free else "generated samples (FID)"
    over = [f"test examples ({REPLICATES} resamples)"] * other + [fid_over] * fid
    texts = {"t": "Student t across seeds", "bootstrap": "bootstrap over " + ", ".join(over)}
    return "95% CI: " + " / ".join(texts[k] for k in sorted(kinds))


Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # (numeric rows, display rows)


Column = tuple[str, str, str, int]  # (measured column, numeric name, display title, digits)


def _measured_rows(
    m: pd.DataFrame,
    by: list[str],
    head: Callable[[tuple[Any, ...]], dict[str, Any]],
    key_col: str,
    keys: list[Any],
    columns: Callable[[Any], list[Column]],
    setting: Callable[[pd.DataFrame], str] = setting_text,
    source: IntervalSource | None = None,
) -> Rows:
    """One row per group of ``by`` (its ``head`` columns, then the setting); for each key of
    ``key_col`` and each of its columns: mean, std, seed count and 95% interval (and its kind)
    of the measured values."""
    numeric, display = [], []
    for group, g in m.groupby(by, sort=False):
        num: dict[str, Any] = {**head(group), "setting": setting(g)}
        disp: dict[str, Any] = dict(num)
        cells = []
        for k in keys:
            cell = g[g[key_col] == k]
            for col, name, title, digits in columns(k):
                c = _cell(cell, col, source)
                cells.append(c)
                num.update({f"{name}_{part}": c[part] for part in c})
                disp[title] = _fmt(
                    c["mean"] if c["seeds"] else None, c["std"], digits, c["lo"], c["hi"]
                )
                if failed := failure_text(cell):  # a model that failed to train (§6.7)
                    failed = f"failed to train: {failed}"
                    num[f"{name}_failed"] = failed
                    disp[title] = f"{disp[title]} ({failed})" if disp[title] else failed
        model_free = num["setting"].startswith("model-free")
        ci = _ci_text(cells, g, model_free)
        for row in (num, disp):
            row["setting"] += f"; {ci}" if ci else ""
            if not model_free and "convergence" in g:
                row["training"] = training_text(g)
        numeric.append(num)
        display.append(disp)
    return numeric, display


def training_text(g: pd.DataFrame) -> str:
    """The convergence status of a row's models (docs/method.md §6.5), with how many seeds
    have each when they differ."""
    per_model = g.drop_duplicates("checkpoint_sha256") if "checkpoint_sha256" in g else g
    counts = per_model["convergence"].fillna("convergence not measured").value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{status} ({k} of {len(per_model)})" for status, k in counts.items())


def _by_model(group: tuple[Any, ...]) -> dict[str, Any]:
    exp, prior = group
    return {"model": f"{PRIOR_NAMES[prior]} [lsnf: {exp}]"}


def _reference_rows(
    reference: dict[str, Any],
    keys: list[Any],
    cell: Callable[[dict[str, Any], Any], tuple[float | None, float | None]],
    name: Callable[[Any], str],
    title: Callable[[Any], str],
    digits: Callable[[Any], int],
) -> Rows:
    """Published rows; unknown cells stay empty (never invented)."""
    numeric, display = [], []
    for model, cells in reference["rows"].items():
        label = f"{model} [paper]"
        num: dict[str, Any] = {"model": label, "setting": reference["setting"]}
        disp: dict[str, Any] = {"model": label, "setting": reference["setting"]}
        for k in keys:
            mean, std = cell(cells, k)
            num.update({f"{name(k)}_mean": mean, f"{name(k)}_std": std, f"{name(k)}_seeds": None})
            disp[title(k)] = _fmt(mean, std, digits(k))
        numeric.append(num)
        display.append(disp)
    return numeric, display


def _frames(*parts: Rows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The parts' rows as one numeric and one display table; a column a part lacks stays NaN
    in the numeric table and empty in the display table."""
    numeric = [r for p in parts for r in p[0]]
    display = [r for p in parts for r in p[1]]
    return pd.DataFrame(numeric), pd.DataFrame(display).fillna("")


# model-free scores on the same test split (lsnf.metrics.anomaly.reference_scores)
REFERENCE_SCORES = {
    "random": "random score (anomaly share)",
    "less_ink": "total ink, less = anomalous",
    "more_ink": "total ink, more = anomalous",
}


def _floor_rows(
    m: pd.DataFrame, keys: list[str], cells: Callable[[Any], list[Column]], reps: Replicates
) -> Rows:
    """One row per model-free score and experiment: what a score that ignores the model reaches
    on each anomaly test split (the same split for every prior and seed)."""
    if m.empty or "ref_random_auprc" not in m:
        return [], []
    split = m.drop_duplicates(["experiment", "anomalies", "n"])
    long = pd.concat(
        [
            split.assign(
                reference=kind, value=split[f"ref_{kind}_auprc"], auroc=split[f"ref_{kind}_auroc"]
            )
            for kind in REFERENCE_SCORES
        ]
    )
    head = lambda group: {"model": f"{REFERENCE_SCORES[group[1]]} [floor: {group[0]}]"}
    model_free = lambda g: setting_text(g, model_free=True)
    return _measured_rows(
        long,
        ["experiment", "reference"],
        head,
        "anomalies",
        keys,
        cells,
        model_free,
        _floors(reps),
    )


def _digit_of(key: str) -> int | None:
    """The digit of an anomaly column ``digit N`` (the paper's); None for a folder's."""
    return int(key.split()[1]) if key.startswith("digit ") else None


def anomaly_table(
    df: pd.DataFrame, reference: dict[str, Any], reps: Replicates
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anomaly AUPRC and AUROC by test split's anomalies — MNIST's held-out digits (``digit 1``),
    then any folder's own (its dataset name) — with the model-free floors of the same test splits
    beside the published AUPRCs: (numeric table, display table)."""
    m = df[df["evaluation"].isin(PAPER_TABLES["anomaly"])]
    measured_digits = {int(d) for d in m["held_out_digit"].dropna()}
    # the paper's digits and rows beside MNIST results only: a folder's table is its own
    digits = sorted(measured_digits | set(reference["digits"]) if measured_digits else ())
    held_out = [f"digit {d}" for d in digits]
    keys = held_out + sorted(set(m["anomalies"].dropna()) - set(held_out))
    name, title, places = (lambda k: k.replace(" ", "")), (lambda k: k), (lambda k: 3)
    published = lambda cells, k: tuple(cells.get(_digit_of(k)) or (None, None))
    cells = lambda k: [
        ("value", name(k), title(k), 3),
        ("auroc", f"{name(k)}_auroc", f"{k} AUROC", 3),
    ]
    measured = _measured_rows(
        m,
        ["experiment", "prior"],
        _by_model,
        "anomalies",
        keys,
        cells,
        source=_measured(reps),
    )
    return _frames(
        measured,
        _floor_rows(m, keys, cells, reps),
        _reference_rows(reference, keys, published, name, title, places) if digits else ([], []),
    )


def _generation_column(row: pd.Series) -> str:
    if row["evaluation"] == "reconstruction":
        return f"{row['dataset']}_mse"
    if row["extractor"] == INCEPTION_V3:
        return f"{row['dataset']}_fid"
    return f"{row['dataset']}_fid[{row['extractor']}]"


def generation_table(
    df: pd.DataFrame,
    reference: dict[str, Any],
    reps: Replicates,
    floors: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's "MSE / FID" table, with FID floor rows (real held-out images against the same
    reference): (numeric table, display table)."""
    m = df[df["evaluation"].isin(PAPER_TABLES["generation"])].copy()
    m["column"] = m.apply(_generation_column, axis=1) if len(m) else []
    f = floors.copy() if floors is not None and len(floors) else pd.DataFrame()
    if len(f):
        f["column"] = f.apply(_generation_column, axis=1)
    columns = list(dict.fromkeys([*sorted(set(m["column"])), *reference["metrics"]]))
    same = lambda c: c
    measured_places = lambda c: 4 if c.endswith("_mse") else 2
    published_places = lambda c: 3 if c.endswith("_mse") else 2
    published = lambda cells, c: (cells.get(c), None)
    measured_fid = set(m.loc[m["evaluation"] == "fid", "column"]) if len(m) else set()
    cells = lambda c: (
        [("value", c, c, measured_places(c))]
        + [
            (v.column, f"{c}_{v.statistic}", f"{c} {v.label}", v.digits)
            for v in EVALUATIONS["fid"].values[1:]
            if c in measured_fid
        ]
    )  # measured FID columns: KID, precision and recall beside (docs/method.md §7.3)
    # per data identity (lsnf.config.DataConfig.key): the floor and the noise row
    floor_head = lambda group: {
        "model": f"uniform noise images [upper reference: {group[0]}]"
        if group[1] == "noise"
        else f"real {group[1]} images [floor: {group[0]}]"
    }
    floor_rows = (
        _measured_rows(
            f,
            ["data_key", "split"],
            floor_head,
            "column",
            columns,
            cells,
            lambda g: setting_text(g, model_free=True),
            _measured(reps),
        )
        if len(f)
        else ([], [])
    )
    measured = _measured_rows(
        m, ["experiment", "prior"], _by_model, "column", columns, cells, source=_measured(reps)
    )
    return _frames(
        measured,
        floor_rows,
        _reference_rows(reference, columns, published, same, same, published_places),
    )


def inpainting_table(df: pd.DataFrame, reps: Replicates) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hole MSE / PSNR / SSIM ([0, 1] scale) per model and test mask (no published numbers:
    the paper shows inpainting as figures)."""
    m = df[df["evaluation"].isin(PAPER_TABLES["inpainting"])]
    cells = lambda t: [
        ("value", f"{t}_mse", f"{t} MSE", 4),
        ("psnr", f"{t}_psnr", f"{t} PSNR", 2),
        ("ssim", f"{t}_ssim", f"{t} SSIM", 3),
    ]
    masks = list(dict.fromkeys(m["mask"]))
    rows = _measured_rows(
        m, ["experiment", "prior"], _by_model, "mask", masks, cells, source=_measured(reps)
    )
    return _frames(rows)


def recovery_table(df: pd.DataFrame, reps: Replicates) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recovery error on hidden pixels ([0, 1] scale): mask setting x prior."""
    m = df[df["evaluation"].isin(PAPER_TABLES["recovery"])]
    head = lambda group: {"mask": group[1], "experiment": group[0]}
    cells = lambda prior: [("value", prior, PRIOR_NAMES[prior], 4)]
    priors = list(dict.fromkeys(m["prior"]))
    rows = _measured_rows(
        m, ["experiment", "mask"], head, "prior", priors, cells, source=_measured(reps)
    )
    return _frames(rows)


def evaluation_table(
    df: pd.DataFrame, ev: Evaluation, reps: Replicates
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table of an evaluation that no paper table shows: per model, each value per
    condition, with its 95% interval."""
    m = df[df["evaluation"] == ev.name]
    conditions = list(dict.fromkeys(m[ev.condition]))
    cells = lambda c: [(v.column, f"{c}_{v.statistic}", f"{c} {v.label}", v.digits)
                       for v in ev.values]  # fmt: skip
    rows = _measured_rows(m, ["experiment", "prior"], _by_model, ev.condition, conditions, cells,
                          source=_measured(reps))  # fmt: skip
    return _frames(rows)
