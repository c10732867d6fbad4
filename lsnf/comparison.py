"""The comparison table: is the flow prior better than each baseline, and by how much?
(docs/method.md §9)

For every experiment × task condition (held-out digit, dataset, mask) × metric, the flow prior
minus the Gaussian prior and minus the EBM prior: the difference of the seed means, a 95%
interval from a bootstrap paired over the same test examples (FID: over each model's generated
samples, which are independent) that also resamples seeds when there are several, and a
verdict for the flow prior (better / worse / indistinguishable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lsnf.errors import UserError
from lsnf.stats import difference_interval
from lsnf.uncertainty import Replicates, statistic_of

__all__ = ["BASELINES", "COMPARED", "comparison_table", "versus_table"]

FLOW = "flow"
BASELINES = {"gaussian": "ABP", "ebm": "LEBM"}  # baseline prior kind -> its short name
# metric of a result -> (task, the column that says which condition, [(value column, label)])
COMPARED: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "anomaly_auprc": ("anomaly", "held_out_digit", [("value", "AUPRC"), ("auroc", "AUROC")]),
    "reconstruction_mse": ("reconstruction", "dataset", [("value", "MSE")]),
    "fid": ("generation", "extractor", [("value", "FID")]),
    "inpainting_mse": (
        "inpainting",
        "mask",
        [("value", "hole MSE"), ("psnr", "hole PSNR"), ("ssim", "hole SSIM")],
    ),
    "recovery_mse": (
        "recovery",
        "mask",
        [("value", "hole MSE"), ("psnr", "hole PSNR"), ("ssim", "hole SSIM")],
    ),
}
_CONDITION = {
    "held_out_digit": "digit {}",
    "dataset": "{}",
    "extractor": "FID[{}]",
    "mask": "mask {}",
}


def _condition(col: str, value: Any) -> str:
    return _CONDITION[col].format(int(value) if col == "held_out_digit" else value)


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


def _compare(
    reps: Replicates, metric: str, col: str, flow: pd.DataFrame, base: pd.DataFrame
) -> dict[str, Any]:
    def runs(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        out = [reps.of(r["file"], metric, col, r[col]) for _, r in rows.iterrows()]
        return np.stack([o[1] for o in out]), np.array([o[0] for o in out])

    stat = statistic_of(metric, col)
    paired = stat is not None
    if paired:
        _check_same_examples(reps, [*flow["file"], *base["file"]])
    (ra, pa), (rb, pb) = runs(flow), runs(base)
    higher = stat.higher_is_better if stat is not None else False  # FID: lower is better
    d = difference_interval(ra, rb, pa, pb, higher)
    n = int(flow["n"].iloc[0])
    how = (
        f"paired bootstrap over the same {n} test examples"
        if paired
        else f"bootstrap over each model's {n} generated samples"
    )
    if len(flow) > 1 or len(base) > 1:
        how += " and over seeds"
    return {
        "a": float(pa.mean()),
        "b": float(pb.mean()),
        "difference": d.estimate,
        "lo": d.lo,
        "hi": d.hi,
        "verdict": d.verdict,
        "seeds": f"{len(flow)} vs {len(base)}",
        "interval": f"95% CI, {how} ({ra.shape[1]} resamples)",
        "better": "higher" if higher else "lower",
    }


def _rows(
    reps: Replicates,
    metric: str,
    values: list[tuple[str, str]],
    a: pd.DataFrame,
    b: pd.DataFrame,
    head: dict[str, Any],
    setting: str,
) -> list[dict[str, Any]]:
    """One row per value column of ``metric``: ``head``, the metric, ``a − b`` and ``setting``."""
    return [
        {**head, "metric": label, **_compare(reps, metric, col, a, b), "setting": setting}
        for col, label in values
    ]


def comparison_table(
    df: pd.DataFrame, reps: Replicates, setting: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flow − Gaussian and flow − EBM for every experiment, condition and metric the results
    hold (``setting``: a group of measurements -> its setting text): (numeric, display)."""
    numeric: list[dict[str, Any]] = []
    for metric, (task, cond_col, values) in COMPARED.items():
        m = df[df["metric"] == metric]
        for (exp, cond), g in m.groupby(["experiment", cond_col], sort=True):
            flow = g[g["prior"] == FLOW].sort_values("seed")
            for kind, short in BASELINES.items():
                base = g[g["prior"] == kind].sort_values("seed")
                if flow.empty or base.empty:
                    continue
                head = {
                    "task": task,
                    "experiment": exp,
                    "condition": _condition(cond_col, cond),
                    "comparison": f"LFBM − {short}",
                }
                numeric += _rows(
                    reps, metric, values, flow, base, head, setting(pd.concat([flow, base]))
                )
    num = pd.DataFrame(numeric).rename(columns={"a": "flow", "b": "baseline"})
    return num, _display(
        num, ["task", "experiment", "condition"], {"flow": "LFBM", "baseline": "baseline"}
    )


def versus_table(
    df: pd.DataFrame, reps: Replicates, pairs: list[tuple[str, str]], setting: Any
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Experiment A − experiment B for each pair, prior, condition and metric: two runs of one
    protocol that differ in a setting (precision, K_test, ...), paired over the same test
    examples and seeds (docs/method.md §9): (numeric, display)."""
    numeric: list[dict[str, Any]] = []
    for exp_a, exp_b in pairs:
        for metric, (task, cond_col, values) in COMPARED.items():
            m = df[(df["metric"] == metric) & df["experiment"].isin([exp_a, exp_b])]
            for (prior, cond), g in m.groupby(["prior", cond_col], sort=False):
                a = g[g["experiment"] == exp_a].sort_values("seed")
                b = g[g["experiment"] == exp_b].sort_values("seed")
                if a.empty or b.empty:
                    continue
                head = {
                    "task": task,
                    "prior": prior,
                    "condition": _condition(cond_col, cond),
                    "comparison": f"{exp_a} − {exp_b}",
                }
                numeric += _rows(
                    reps, metric, values, a, b, head, f"A: {setting(a)} | B: {setting(b)}"
                )
    num = pd.DataFrame(numeric)
    return num, _display(num, ["task", "prior", "condition"], {"a": "A", "b": "B"})


def _display(num: pd.DataFrame, head: list[str], values: dict[str, str]) -> pd.DataFrame:
    """Display strings of a comparison table; ``values``: numeric column -> title of the two
    compared values (the first is the one the verdict is for)."""
    if num.empty:
        return num
    digits = num["metric"].map(lambda x: 4 if "MSE" in x else 2 if x in ("FID", "hole PSNR") else 3)
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
            "seeds": num["seeds"],
            "interval": num["interval"],
            "setting": num["setting"],
        }
    )
