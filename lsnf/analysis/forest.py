"""The comparison as a forest plot (docs/method.md §9): every difference LFBM − baseline with
its 95% interval and verdict.

One panel per evaluation and metric, in the metric's own units (a shared relative scale would
be ruled by metrics near 0, such as KID), each saying which side of 0 favours the flow prior.
Colour and marker give the verdict, undecided and failed ones hollow: the figure reads like the
table, never more decided than it. :func:`plot_budget` draws the same differences against the
models' training budget, one experiment per budget (docs/results.md, "Budget to verdict").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsnf.config import MODEL_NAMES
from lsnf.io import atomic_write_bytes

__all__ = ["plot_budget", "plot_course", "plot_forest"]

LFBM = MODEL_NAMES["flow"]  # the model each plot compares with its baselines

_STYLE = {  # verdict -> (colour, filled)
    "better": ("tab:green", True),
    "worse": ("tab:red", True),
    "indistinguishable": ("tab:gray", True),
    "undecided": ("tab:orange", False),
    "failed to train": ("black", False),
}


def _kind(verdict: str) -> str:
    """The verdict's kind, a key of the legend (``better at 864 iterations (…)`` -> better)."""
    return next((key for key in _STYLE if verdict.startswith(key)), verdict.split(" (")[0])


def _style(verdict: str) -> tuple[str, bool]:
    return _STYLE.get(_kind(verdict), ("tab:blue", False))


def plot_forest(num: pd.DataFrame, out: str | Path) -> None:
    """Write the forest plot of a numeric comparison table (lsnf.analysis.comparison) to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if num.empty:  # nothing to compare: say so, in the place the figure is looked for
        fig, ax = plt.subplots(figsize=(8, 1.5))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No comparison: no experiment has a flow model and a baseline with "
            "results of one evaluation",
            ha="center",
            va="center",
        )
        atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
        plt.close(fig)
        return
    groups = list(num.groupby(["evaluation", "metric"], sort=False))
    heights = [len(g) + 1.5 for _, g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(10, 0.3 * sum(heights) + 1),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    seen: dict[str, Any] = {}
    for ax, ((evaluation, metric), g) in zip(axes[:, 0], groups, strict=True):
        y = np.arange(len(g))[::-1]
        for yi, (_, r) in zip(y, g.iterrows(), strict=True):
            colour, filled = _style(str(r["verdict"]))
            ax.plot([r["lo"], r["hi"]], [yi, yi], color=colour, lw=1.5)
            mfc = colour if filled else "white"
            seen[_kind(str(r["verdict"]))] = ax.plot(
                r["difference"], yi, "o", color=colour, mfc=mfc
            )[0]
        ax.axvline(0, color="black", lw=0.8)
        labels = [
            f"{r['experiment']} · {r['condition']} · {r['comparison']}" for _, r in g.iterrows()
        ]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(-0.8, len(g) - 0.2)
        side = "right" if g["better"].iloc[0] == "higher" else "left"
        ax.set_title(f"{evaluation}: {metric} ({LFBM} better to the {side} of 0)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="upper right")
    fig.suptitle(
        f"Is the flow prior better? {LFBM} − baseline, simultaneous 95% interval, verdict",
        fontsize=10,
    )
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)


def plot_budget(num: pd.DataFrame, measurements: pd.DataFrame, out: str | Path) -> None:
    """Each comparison's difference, interval and verdict against the flow models' learning
    iterations, one experiment per budget: where the verdicts settle. ``num``: a numeric
    comparison table; ``measurements``: its ``measurements.csv`` (``train_iterations``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flow = measurements[measurements["prior"] == "flow"]
    budget = flow.groupby("experiment")["train_iterations"].max()  # experiment -> iterations
    num = num.assign(iterations=num["experiment"].map(budget)).dropna(subset=["iterations"])
    metrics = list(dict.fromkeys(zip(num["evaluation"], num["metric"], strict=True)))
    sides = list(dict.fromkeys(num["comparison"]))
    fig, axes = plt.subplots(
        len(metrics), len(sides), figsize=(4 * len(sides), 2.4 * len(metrics)), squeeze=False
    )
    seen: dict[str, Any] = {}
    for i, (evaluation, metric) in enumerate(metrics):
        for j, side in enumerate(sides):
            ax = axes[i, j]
            rows = num[
                (num["evaluation"] == evaluation)
                & (num["metric"] == metric)
                & (num["comparison"] == side)
            ].sort_values("iterations")
            ax.axhline(0, color="black", lw=0.8)
            ax.plot(rows["iterations"], rows["difference"], color="lightgray", lw=1)
            for _, r in rows.iterrows():
                colour, filled = _style(str(r["verdict"]))
                ax.plot([r["iterations"]] * 2, [r["lo"], r["hi"]], color=colour, lw=1.5)
                mfc = colour if filled else "white"
                seen[_kind(str(r["verdict"]))] = ax.plot(
                    r["iterations"], r["difference"], "o", color=colour, mfc=mfc
                )[0]
            better = "higher" if rows["better"].eq("higher").all() else "lower"
            ax.set_title(f"{metric} ({better} is better): {side}", fontsize=8)
            ax.set_xscale("log")
            ticks = sorted(num["iterations"].unique())  # the budgets themselves, no minor labels
            ax.set_xticks(ticks, [f"{t:.0f}" for t in ticks], minor=False)
            ax.set_xticks([], minor=True)
            ax.grid(alpha=0.3)
            if i == len(metrics) - 1:
                ax.set_xlabel("learning iterations")
    fig.legend(seen.values(), seen.keys(), fontsize=8, loc="upper right")
    fig.suptitle(f"Budget to verdict: {LFBM} − baseline against the training budget", fontsize=10)
    fig.tight_layout()
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)


def plot_course(course: pd.DataFrame, num: pd.DataFrame, experiment: str, out: str | Path) -> None:
    """The course of an experiment's comparisons (docs/method.md §9.1): each difference LFBM −
    baseline with its simultaneous interval against learning iterations, one panel per
    condition and metric, one line per baseline, the end marked by its verdict. ``course``,
    ``num``: the course and numeric comparison tables (lsnf.analysis.comparison)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = course[course["experiment"] == experiment] if not course.empty else course
    if rows.empty:
        fig, ax = plt.subplots(figsize=(8, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No comparison in experiment {experiment}", ha="center", va="center")
        atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
        plt.close(fig)
        return
    panels = list(dict.fromkeys(zip(rows["condition"], rows["metric"], strict=True)))
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.8 * nrows + 0.4), squeeze=False)
    seen: dict[str, Any] = {}
    ends = num[num["experiment"] == experiment]
    for ax, (condition, metric) in zip(axes.flat, panels, strict=False):
        panel = rows[(rows["condition"] == condition) & (rows["metric"] == metric)]
        for (side, g), colour in zip(panel.groupby("comparison", sort=False), _LINES, strict=False):
            g = g.sort_values("iteration")
            ax.fill_between(g["iteration"], g["lo"], g["hi"], color=colour, alpha=0.15, lw=0)
            seen[side] = ax.plot(g["iteration"], g["difference"], "-", color=colour, lw=1.2)[0]
            end = ends[
                (ends["condition"] == condition)
                & (ends["metric"] == metric)
                & (ends["comparison"] == side)
            ]
            if not end.empty:
                v = str(end["verdict"].iloc[0])
                c, filled = _style(v)
                ax.plot(g["iteration"].iloc[-1], g["difference"].iloc[-1], "o", color=c,
                        mfc=c if filled else "white")  # fmt: skip
                seen.setdefault(_kind(v), ax.lines[-1])
        ax.axhline(0, color="black", lw=0.8)
        prefers = ends[ends["metric"] == metric]["better"]
        better = "higher" if prefers.eq("higher").all() else "lower"
        ax.set_title(f"{condition}: {metric} ({better} is better for {LFBM})", fontsize=8)
        ax.set_xlabel("learning iterations", fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    # the legend beside the panels, the title on two lines above them: neither covers the other
    fig.legend(seen.values(), seen.keys(), fontsize=7, loc="center right")
    fig.suptitle(
        f"{experiment}: {LFBM} − baseline over training (simultaneous 95% interval)\n"
        "the end point's marker is its verdict",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 0.84, 1 - 0.4 / fig.get_figheight()))
    atomic_write_bytes(out, lambda fh: fig.savefig(fh, format="png", dpi=100))
    plt.close(fig)


_LINES = ("tab:blue", "tab:purple", "tab:brown", "tab:olive")  # one per baseline
