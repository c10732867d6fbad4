"""The cost table: what each model's numbers cost to make, beside the quality tables.

Per model: training time (the sum of its epochs' seconds in ``metrics.jsonl``, so a resumed run
counts every epoch once; a 2s-ABP model's: its ABP model's and its flow fit's), training
throughput (images/s, mean over epochs), the training job's peak resident memory, and the wall
time of each evaluation job. Memory and job wall times come from Snakemake's per-job benchmark
files (:func:`lsnf.layout.benchmark`: the job's last attempt, on the machine that ran it); a
model trained outside the workflow has none, and those cells stay empty.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pandas as pd

from lsnf import layout
from lsnf.io import read_json_lines

__all__ = ["cost_table"]

TRAIN_RULES = ("train", "train_two_stage")  # the job that makes a model (2s-ABP: its fit)


def _benchmark(path: Path) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one benchmark file (its last row)."""
    row = pd.read_csv(path, sep="\t").iloc[-1]
    return {"s": float(row["s"]), "max_rss": float(row["max_rss"])}


def cost_table(models: pd.DataFrame, results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model of ``models`` (columns experiment, run and its label ``model``):
    (numeric, display)."""
    root = str(results_dir)
    numeric = []
    for _, m in models.drop_duplicates(["experiment", "run"]).iterrows():
        exp, run = m["experiment"], m["run"]
        epochs = read_json_lines(layout.curve(exp, run, root))
        seconds = [e["seconds"] for e in epochs if "seconds" in e]
        speed = [e["images_per_s"] for e in epochs if "images_per_s" in e]
        row: dict[str, Any] = {
            "model": m["model"],
            # epochs: timed rows, not validation point 0 nor a 2s-ABP fit's row (stage 2)
            "epochs": sum("seconds" in e and "stage" not in e for e in epochs),
            "train_s": sum(seconds) if seconds else float("nan"),
            "train_images_per_s": sum(speed) / len(speed) if speed else float("nan"),
        }
        made = [
            p
            for r in TRAIN_RULES
            if (p := Path(layout.benchmark(r, f"{exp}/{run}", root))).is_file()
        ]
        row["train_peak_rss_mb"] = _benchmark(made[0])["max_rss"] if made else float("nan")
        # every other job of this model: {rule}/{exp}/{run}.tsv, column {rule}; or, a job per
        # condition (an inpainting mask), {rule}/{exp}/{run}/{x}.tsv, column {rule}-{x}
        jobs = {
            b: f"{Path(b).parents[1].name}"
            for b in glob.glob(layout.benchmark("*", f"{exp}/{run}", root))
        }
        jobs |= {
            b: f"{Path(b).parents[2].name}-{Path(b).stem}"
            for b in glob.glob(layout.benchmark("*", f"{exp}/{run}/*", root))
        }
        for bench, column in sorted(jobs.items()):
            if column not in TRAIN_RULES:
                row[f"{column}_s"] = _benchmark(Path(bench))["s"]
        numeric.append(row)
    num = pd.DataFrame(numeric)
    titles = {
        "train_s": "training (s)",
        "train_images_per_s": "training images/s",
        "train_peak_rss_mb": "training peak RSS (MB)",
    }
    display = pd.DataFrame({"model": num["model"], "epochs": num["epochs"].astype(str)})
    for col in num.columns[2:]:
        title = titles.get(col, f"{col.removesuffix('_s')} wall (s)")
        display[title] = [("" if pd.isna(v) else f"{v:.0f}") for v in num[col]]
    return num, display
