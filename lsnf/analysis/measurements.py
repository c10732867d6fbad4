"""The measurements the tables rest on: one row per result file, identified by its record
(:func:`lsnf.evaluation.results.identify`), one per FID floor, and the setting text that says what a
group of them rests on. ``measurements.csv`` is this table, with every result's provenance.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lsnf.errors import UserError
from lsnf.evaluation.registry import EVALUATIONS
from lsnf.evaluation.results import check_identity
from lsnf.io import read_json
from lsnf.training.convergence import NOT_MEASURED, status_for

__all__ = [
    "anomalies_text",
    "load_floors",
    "load_measurements",
    "setting_text",
    "with_trivial_fid",
]

_VALUE_COLUMNS = list(dict.fromkeys(v.column for e in EVALUATIONS.values() for v in e.values))
_FID_COLUMNS = [v.column for v in EVALUATIONS["fid"].values if v.column != "value"]


def anomalies_text(digit: int | None, record: dict) -> str | None:
    """What an anomaly result's test split holds as anomalies: ``digit 1`` (a held-out digit,
    docs/protocols.md §2) or, for a folder, its dataset's name (its anomalous images, §10)."""
    if digit is not None:
        return f"digit {int(digit)}"
    return record["dataset"] if record.get("data", {}).get("protocol") == "anomaly" else None


def load_measurements(paths: list[str | Path]) -> pd.DataFrame:
    """One row per result file, identified by its record's ``identity``
    (:func:`lsnf.evaluation.results.identify`)."""
    rows = []
    for p in map(Path, paths):
        r = read_json(p)
        who = r.get("identity") or {}
        if not who.get("experiment") or not who.get("run"):
            raise UserError(
                f"{p} does not record its experiment and run (written by an older lsnf, or by "
                f"`lsnf eval` without --run-key EXPERIMENT/RUN); rerun that evaluation with it"
            )
        check_identity(p, r)
        extractor = r.get("feature_extractor", {}).get("name")
        model_convergence = (r.get("training") or {}).get("convergence")
        # the status of the curve that decides this evaluation's verdicts (docs/method.md §6.5)
        converged = status_for(model_convergence, EVALUATIONS[r["evaluation"]].curve)
        references = {
            f"ref_{kind}_{k}": v
            for kind, cell in r.get("reference_scores", {}).items()
            for k, v in cell.items()
        }
        row = {
            "experiment": who["experiment"],
            "run": who["run"],
            "prior": who["prior"],
            "seed": who["seed"],
            "precision": r.get("precision"),
            "tf32": r.get("tf32"),
            "dataset": r["dataset"],
            "source": r["data"].get("source"),
            "held_out_digit": who["held_out_digit"],
            "anomalies": anomalies_text(who["held_out_digit"], r),
            "data_key": r.get("data_key"),
            "evaluation": r["evaluation"],
            "extractor": extractor,
            "extractor_accuracy": r.get("feature_extractor", {}).get("test_accuracy"),
            "value": r["value"],
            "failed": (r.get("failed") or {}).get("text"),  # failed to train (§6.7): no values
            "auroc": r.get("auroc"),
            "n": r["n"],
            "test_steps": r.get("inference", {}).get("steps"),
            "noise": r.get("inference", {}).get("noise"),
            "batchnorm": r.get("inference", {}).get("batchnorm"),
            "batch_size": r.get("inference", {}).get("batch_size"),
            "mask": who["mask"],
            "psnr": r.get("psnr"),
            "ssim": r.get("ssim"),
            "convergence": converged["status"],
            "convergence_detail": converged["detail"],
            "model_convergence": (model_convergence or {}).get("status") or NOT_MEASURED,
            "train_iterations": (r.get("training") or {}).get("iterations"),
            "checkpoint_sha256": r["checkpoint_sha256"],
            "lsnf_version": r.get("lsnf_version"),  # the code that wrote it (results.stamp)
            "lsnf_commit": r.get("lsnf_commit"),
            "lsnf_dirty": r.get("lsnf_dirty"),
            "config_sha256": r.get("config_sha256"),
            "file": str(p),
            **references,
            # what a model that learned nothing scores (docs/method.md §6.5), per value column
            **{
                f"trivial_{k}": v
                for k, v in (r.get("trivial_reference") or {}).items()
                if k != "of"
            },
        }
        # the values of any other evaluation of the registry
        rows.append(row | {c: r.get(c) for c in _VALUE_COLUMNS if c not in row})
    return pd.DataFrame(rows)


def failure_text(rows: pd.DataFrame) -> str:
    """Why the models of ``rows`` that failed to train did (their ``failed`` column,
    docs/method.md §6.7), each with its seed where ``rows`` has several; "" when none did."""
    if "failed" not in rows or rows["failed"].isna().all():
        return ""
    gone = rows[rows["failed"].notna()]
    seeds = len(rows) > 1
    return "; ".join(
        f"seed {s}: {t}" if seeds else t for s, t in zip(gone["seed"], gone["failed"], strict=True)
    )


def load_floors(paths: list[str | Path]) -> pd.DataFrame:
    """One row per model-free FID row file (``lsnf fid-floor``: real test images, or noise),
    in the measurements' columns."""
    rows = []
    for p in map(Path, paths):
        r = read_json(p)
        rows.append(
            {
                "dataset": r["dataset"],
                "data_key": r["data_key"],
                "source": r["data"].get("source"),
                "split": r["data"].get("split"),
                "evaluation": "fid",
                "extractor": r["feature_extractor"]["name"],
                "extractor_accuracy": r["feature_extractor"].get("test_accuracy"),
                "value": r["value"],
                "failed": (r.get("failed") or {}).get("text"),  # failed to train (§6.7): no values
                **{c: r.get(c) for c in _FID_COLUMNS},
                "n": r["n"],
                "seed": None,
                "test_steps": None,
                "noise": None,
                "batchnorm": None,
                "batch_size": r.get("batch_size"),
                "file": str(p),
            }
        )
    return pd.DataFrame(rows)


def setting_text(g: pd.DataFrame, model_free: bool = False) -> str:
    """What a row's numbers rest on: data, inference (K_test, noise, BatchNorm), test images,
    seeds; a model-free row (a floor) names only its data and test images."""
    parts = [f"{g['dataset'].iloc[0]} ({g['source'].iloc[0]})"]
    steps = sorted({int(s) for s in g["test_steps"].dropna()})
    if steps and not model_free:
        noise = {"noisy" if n else "noise-free" for n in g["noise"].dropna()}
        parts.append(" ".join([f"K_test={'/'.join(map(str, steps))}", *sorted(noise)]))
    if "batch" in set(g["batchnorm"].dropna()) and not model_free:
        batch = g[g["batchnorm"] == "batch"]["batch_size"].dropna()  # then numbers depend on it
        sizes_of = "/".join(str(int(b)) for b in sorted(set(batch)))
        parts.append(f"BatchNorm: statistics of test batches of {sizes_of}")
    if not model_free and "precision" in g and g["precision"].notna().any():
        tf32 = " (TF32)" if g.get("tf32", pd.Series(dtype=bool)).fillna(False).any() else ""
        parts.append("/".join(sorted(set(g["precision"].dropna()))) + tf32)

    def sizes(rows: pd.DataFrame) -> str:
        """Their test sizes; those of results with values where some have them (a model that
        failed to train has n = 0, docs/method.md §6.7)."""
        if "failed" in rows and rows["failed"].isna().any():
            rows = rows[rows["failed"].isna()]
        return "/".join(map(str, sorted(set(rows["n"]))))

    if (g["evaluation"] != "fid").any():
        parts.append(f"n_test={sizes(g[g['evaluation'] != 'fid'])}")
    if (g["evaluation"] == "fid").any():
        fid = g[g["evaluation"] == "fid"]
        accuracy = sorted(set(fid.get("extractor_accuracy", pd.Series(dtype=float)).dropna()))
        parts.append(
            f"FID n={sizes(fid)}"
            + (
                f" (extractor test accuracy {'/'.join(f'{a:.3f}' for a in accuracy)})"
                if accuracy
                else ""
            )
        )
    if model_free:
        return "model-free; " + ", ".join(parts)
    return "measured; " + ", ".join([*parts, f"{g['seed'].nunique()} seed(s)"])


def with_trivial_fid(df: pd.DataFrame, floors: pd.DataFrame) -> pd.DataFrame:
    """``df`` whose FID results carry, as ``trivial_<value>``, the values of the noise row of
    their data and extractor: what a model that learned nothing reaches (docs/method.md §6.5)."""
    if df.empty or floors.empty or "fid" not in set(df["evaluation"]):
        return df
    noise = floors[floors["split"] == "noise"]
    columns = ["value", *_FID_COLUMNS]
    trivial = noise[["data_key", "extractor", *columns]].rename(
        columns={c: f"trivial_{c}" for c in columns}
    )
    fid = df["evaluation"] == "fid"
    merged = df[fid].drop(columns=[c for c in trivial if c.startswith("trivial_")], errors="ignore")
    merged = merged.merge(trivial, on=["data_key", "extractor"], how="left")
    merged.index = df.index[fid]
    return pd.concat([df[~fid], merged]).loc[df.index]
