"""The cost table: what each model's numbers cost to make, beside the quality tables.

Per model: training time (the sum of its epochs' seconds in ``metrics.jsonl``, so a resumed run
counts every epoch once), training throughput (images/s, mean over epochs), the training job's
peak resident memory, and the wall time of each evaluation job. Memory and job wall times come
from Snakemake's per-job benchmark files (``results/benchmarks/<rule>/<experiment>/<run>*.tsv``:
the job's last attempt, on the machine that ran it); a model trained outside the workflow has
none, and those cells stay empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lsnf.io import read_json_lines

__all__ = ["cost_table"]

TRAIN_RULE = "train"


def _benchmark(path: Path) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one benchmark file (its last row)."""
    row = pd.read_csv(path, sep="\t").iloc[-1]
    return {"s": float(row["s"]), "max_rss": float(row["max_rss"])}


def cost_table(models: pd.DataFrame, results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per model of ``models`` (columns experiment, run and its label ``model``):
    (numeric, display)."""
    root = Path(results_dir)
    numeric = []
    for _, m in models.drop_duplicates(["experiment", "run"]).iterrows():
        exp, run = m["experiment"], m["run"]
        epochs = read_json_lines(root / "models" / exp / run / "metrics.jsonl")
        seconds = [e["seconds"] for e in epochs if "seconds" in e]
        speed = [e["images_per_s"] for e in epochs if "images_per_s" in e]
        row: dict[str, Any] = {
            "model": m["model"],
            "epochs": len(epochs),
            "train_s": sum(seconds) if seconds else float("nan"),
            "train_images_per_s": sum(speed) / len(speed) if speed else float("nan"),
        }
        train = root / "benchmarks" / TRAIN_RULE / exp / f"{run}.tsv"
        row["train_peak_rss_mb"] = _benchmark(train)["max_rss"] if train.is_file() else float("nan")
        for bench in sorted((root / "benchmarks").glob(f"*/{exp}/{run}*.tsv")):
            rule, suffix = bench.parent.parent.name, bench.stem[len(run) :]
            if rule == TRAIN_RULE or (suffix and not suffix.startswith("-")):
                continue  # another run whose id starts with this one's
            row[f"{rule}{suffix}_s"] = _benchmark(bench)["s"]
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
