"""Regenerate the paper's tables from result JSONs, beside the published numbers (pandas).

Measured rows are means ± std over seeds, with the number of seeds and the setting (dataset,
source, test images, K_test, feature extractor) stated; published rows come from
``config/paper_reference.yaml`` and unknown cells stay empty. Each table is written as CSV
(numbers: mean, std, seeds per column), Markdown and LaTeX (display strings). A long-form
``measurements.csv`` lists every result file with its provenance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lsnf.checkpoint import atomic_write_bytes

__all__ = ["PRIOR_NAMES", "anomaly_table", "generation_table", "load_measurements", "write_tables"]

PRIOR_NAMES = {"flow": "LFBM (flow prior)", "gaussian": "ABP (Gaussian prior)",
               "ebm": "LEBM (EBM prior)"}  # fmt: skip


def load_measurements(paths: list[str | Path]) -> pd.DataFrame:
    """One row per result file at ``results/eval/{experiment}/{run}/{name}.json``."""
    rows = []
    for p in map(Path, paths):
        r = json.loads(p.read_text())
        extractor = r.get("feature_extractor", {}).get("name")
        rows.append({
            "experiment": p.parts[-3],
            "run": p.parts[-2],
            "prior": r["model"]["prior"],
            "seed": r["seed"],
            "dataset": r["dataset"],
            "source": r["data"].get("source"),
            "held_out_digit": r["data"].get("held_out_digit"),
            "metric": r["metric"],
            "extractor": extractor,
            "value": r["value"],
            "n": r["n"],
            "test_steps": r.get("inference", {}).get("steps"),
            "checkpoint_sha256": r["checkpoint_sha256"],
            "file": str(p),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _fmt(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _agg(values: pd.Series) -> tuple[float, float, int]:
    n = int(values.count())
    return float(values.mean()), float(values.std(ddof=1)) if n > 1 else float("nan"), n


def _setting(g: pd.DataFrame) -> str:
    parts = [f"{g['dataset'].iloc[0]} ({g['source'].iloc[0]})"]
    steps = sorted({int(s) for s in g["test_steps"].dropna()})
    if steps:
        parts.append(f"K_test={'/'.join(map(str, steps))}")
    parts.append(f"n_test={'/'.join(map(str, sorted(set(g['n']))))}")
    parts.append(f"{g['seed'].nunique()} seed(s)")
    return "measured; " + ", ".join(parts)


def anomaly_table(df: pd.DataFrame, reference: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MNIST anomaly AUPRC by held-out digit: (numeric table, display table)."""
    m = df[df["metric"] == "anomaly_auprc"]
    digits = sorted({int(d) for d in m["held_out_digit"].dropna()} | set(reference["digits"]))
    numeric, display = [], []
    for (exp, prior), g in m.groupby(["experiment", "prior"], sort=False):
        label = f"{PRIOR_NAMES[prior]} [lsnf: {exp}]"
        num: dict[str, Any] = {"model": label, "setting": _setting(g)}
        disp: dict[str, Any] = {"model": label, "setting": num["setting"]}
        for d in digits:
            cell = g[g["held_out_digit"] == d]["value"]
            mean, std, n = _agg(cell) if len(cell) else (float("nan"), float("nan"), 0)
            num.update({f"digit{d}_mean": mean, f"digit{d}_std": std, f"digit{d}_seeds": n})
            disp[f"digit {d}"] = _fmt(mean if n else None, std)
        numeric.append(num)
        display.append(disp)
    for name, cells in reference["rows"].items():
        label = f"{name} [paper]"
        num = {"model": label, "setting": reference["setting"]}
        disp = {"model": label, "setting": reference["setting"]}
        for d in digits:
            mean, std = (cells.get(d) or [None, None]) if d in cells else (None, None)
            num.update({f"digit{d}_mean": mean, f"digit{d}_std": std, f"digit{d}_seeds": None})
            disp[f"digit {d}"] = _fmt(mean, std)
        numeric.append(num)
        display.append(disp)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def _generation_column(row: pd.Series) -> str:
    if row["metric"] == "reconstruction_mse":
        return f"{row['dataset']}_mse"
    if row["extractor"] == "inception-v3-compat":
        return f"{row['dataset']}_fid"
    return f"{row['dataset']}_fid[{row['extractor']}]"


def generation_table(
    df: pd.DataFrame, reference: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ "MSE / FID" table: (numeric table, display table)."""
    m = df[df["metric"].isin(["reconstruction_mse", "fid"])].copy()
    m["column"] = m.apply(_generation_column, axis=1) if len(m) else []
    columns = list(dict.fromkeys([*sorted(set(m["column"])), *reference["metrics"]]))
    numeric, display = [], []
    for (exp, prior), g in m.groupby(["experiment", "prior"], sort=False):
        label = f"{PRIOR_NAMES[prior]} [lsnf: {exp}]"
        num: dict[str, Any] = {"model": label, "setting": _setting(g)}
        disp: dict[str, Any] = {"model": label, "setting": num["setting"]}
        for c in columns:
            cell = g[g["column"] == c]["value"]
            mean, std, n = _agg(cell) if len(cell) else (float("nan"), float("nan"), 0)
            num.update({f"{c}_mean": mean, f"{c}_std": std, f"{c}_seeds": n})
            disp[c] = _fmt(mean if n else None, std, digits=4 if c.endswith("_mse") else 2)
        numeric.append(num)
        display.append(disp)
    for name, cells in reference["rows"].items():
        label = f"{name} [paper]"
        num = {"model": label, "setting": reference["setting"]}
        disp = {"model": label, "setting": reference["setting"]}
        for c in columns:
            v = cells.get(c)
            num.update({f"{c}_mean": v, f"{c}_std": None, f"{c}_seeds": None})
            disp[c] = _fmt(v, None, digits=3 if c.endswith("_mse") else 2)
        numeric.append(num)
        display.append(disp)
    return pd.DataFrame(numeric), pd.DataFrame(display)


def _write_text(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def write_tables(
    result_files: list[str | Path], reference_path: str | Path, out_dir: str | Path
) -> list[Path]:
    """Write every table whose metric appears in the results; return the files written."""
    out_dir = Path(out_dir)
    df = load_measurements(result_files)
    reference = yaml.safe_load(Path(reference_path).read_text())
    written = [out_dir / "measurements.csv"]
    _write_text(written[0], df.to_csv(index=False))
    builders = {"anomaly": (anomaly_table, {"anomaly_auprc"}),
                "generation": (generation_table, {"reconstruction_mse", "fid"})}  # fmt: skip
    for name, (build, metrics) in builders.items():
        if df.empty or not set(df["metric"]) & metrics:
            continue
        numeric, display = build(df, reference[name])
        _write_text(out_dir / f"{name}.csv", numeric.to_csv(index=False))
        markdown = display.to_markdown(index=False, disable_numparse=True)
        _write_text(out_dir / f"{name}.md", markdown + "\n")
        _write_text(out_dir / f"{name}.tex", display.to_latex(index=False, escape=True))
        written += [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    return written
