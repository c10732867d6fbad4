"""The Snakemake DAG run for real: tiny scenario end to end, MLflow read back, dry runs, lint,
config validation before any job, and minimal re-runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("snakemake")
pytest.importorskip("mlflow")

from workflow_helpers import ROOT
from workflow_helpers import copy_project as _copy_project
from workflow_helpers import snakemake as _snakemake

pytestmark = pytest.mark.workflow  # every test here runs Snakemake or SLURM


def test_tiny_scenario_produces_tables(tiny_run: Path) -> None:
    import pandas as pd

    tables = tiny_run / "results" / "tables"
    for name in ("anomaly", "generation"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
    anomaly = pd.read_csv(tables / "anomaly.csv")
    measured = anomaly[anomaly["model"].str.contains("lsnf: tiny_anomaly")]
    assert len(measured) == 3 and measured["digit1_mean"].between(0, 1).all()
    assert (measured["digit1_seeds"] == 1).all()
    paper = anomaly[anomaly["model"] == "LEBM [paper]"].iloc[0]
    assert paper["digit4_mean"] == pytest.approx(0.630) and pd.isna(paper["digit1_seeds"])
    lfbm = anomaly[anomaly["model"] == "LFBM [paper]"].iloc[0]
    assert pd.isna(lfbm["digit1_mean"])  # unknown published cells stay empty
    gen = pd.read_csv(tables / "generation.csv")
    assert "mnist_fid[lsnf-domain-cnn]_mean" in gen.columns and "mnist_mse_mean" in gen.columns
    long = pd.read_csv(tables / "measurements.csv")
    assert len(long) == 3 + 8 + 6 + 4 and long["checkpoint_sha256"].str.len().eq(64).all()
    inpaint = pd.read_csv(tables / "inpainting.csv")
    assert len(inpaint) == 3 and inpaint["center_mse_mean"].between(0, 1).all()
    assert inpaint["sp50_ssim_mean"].notna().all()
    recovery = pd.read_csv(tables / "recovery.csv")
    assert sorted(recovery["mask"]) == ["sp30", "sq10"]
    assert recovery["flow_mean"].between(0, 1).all() and recovery["gaussian_mean"].notna().all()
    # every cell carries its interval; the floors and the comparison are there
    assert measured["digit1_lo"].le(measured["digit1_mean"]).all()
    assert (measured["digit1_ci"] == "bootstrap").all()
    assert (
        gen.loc[gen["model"].str.startswith("real test images"), "mnist_fid[lsnf-domain-cnn]_mean"]
        .notna()
        .all()
    )
    # tiny_anomaly and tiny_generation share MNIST but not their splits: the generation FIDs'
    # reference is the generation training split (fid.reference_n = 300 of it) and their floor
    # its test split (fid.n_samples = 64), never the anomaly protocol's
    import json

    from lsnf.config import load_config
    from lsnf.data.splits import load_split

    cfg = load_config(tiny_run / "results/configs/tiny_generation/flow-seed0.yaml")
    data = cfg.data.model_copy(update={"limit": None})
    fid = json.loads((tiny_run / "results/eval/tiny_generation/flow-seed0/fid.json").read_text())
    train = load_split(data, "train").head(300).describe()
    assert (fid["data"]["n"], fid["data"]["images_sha256"]) == (300, train["images_sha256"])
    assert fid["data_key"] == data.key and fid["data_identity"]["protocol"] == "standard"
    (floor_file,) = (tiny_run / "results" / "fid").glob("*/floor-lsnf-domain-cnn.json")
    floor = json.loads(floor_file.read_text())
    test = load_split(data, "test").head(64).describe()
    assert floor["data"]["images_sha256"] == test["images_sha256"] and floor["data_key"] == data.key
    assert len(list((tiny_run / "results" / "data").glob("*.json"))) == 2  # one per identity
    comparison = pd.read_csv(tables / "comparison.csv")
    assert set(comparison["evaluation"]) == {
        "anomaly",
        "reconstruction",
        "fid",
        "inpainting",
        "recovery",
    }
    # a run this short decides nothing (docs/method.md §9.1): every verdict is undecided or
    # names a model that failed to train, whatever the interval alone says
    assert comparison["verdict"].str.match(r"undecided \(not settled: |failed to train: ").all()
    # the generation models kept a snapshot after epoch 1 (tiny.yaml: snapshots 2), evaluated
    # and listed in each result's course; 2s-ABP fitted its own flow to ABP's snapshot
    course = pd.read_csv(tables / "course.csv")
    gen_course = course[course["experiment"] == "tiny_generation"]
    assert set(gen_course["iteration"]) == {2, 4} and (gen_course["lo"] <= gen_course["hi"]).all()
    assert set(comparison.loc[comparison["experiment"] == "tiny_generation", "course_points"]) == {
        2
    }
    assert (
        tiny_run / "results/models/tiny_generation/abp2s-seed0/snapshots/epoch-0001.pt"
    ).exists()
    assert (tables / "course-tiny_generation.png").stat().st_size > 0
    summary = (tables / "comparison.md").read_text().splitlines()[0]
    assert summary.startswith(f"**{len(comparison)} comparisons: 0 better, 0 worse, 0 ind")
    assert set(comparison["interval_verdict"]) <= {"better", "worse", "indistinguishable"}
    assert (comparison["lo"] <= comparison["hi"]).all()
    fid_metrics = set(comparison.loc[comparison["evaluation"] == "fid", "metric"])
    assert fid_metrics == {"FID", "KID", "precision", "recall"}
    statuses = {"converged", "not converged", "failed to train"}
    assert set(gen.loc[gen["model"].str.contains(r"\[lsnf: "), "training"]) <= statuses
    assert fid["training"]["convergence"]["status"] in statuses
    assert fid["training"]["convergence"]["curves"].keys() == {"valid_mse", "valid_kid"}
    noise = gen[gen["model"].str.startswith("uniform noise images")].iloc[0]
    real = gen[gen["model"].str.startswith("real test images")].iloc[0]
    kid = "mnist_fid[lsnf-domain-cnn]_kid_mean"
    assert noise[kid] > real[kid] and noise["mnist_fid[lsnf-domain-cnn]_mean"] > 0
    cost = pd.read_csv(tables / "cost.csv")
    assert len(cost) == 14 and cost["train_s"].gt(0).all() and cost["train_peak_rss_mb"].gt(0).all()
    assert cost.loc[cost["model"].str.contains("tiny_anomaly"), "eval_anomaly_s"].gt(0).all()
    # every result has its per-example file, and a cell is recomputed from it alone
    from lsnf.evaluation.results import read_examples
    from lsnf.layout import is_course_index
    from lsnf.metrics.stats import STATISTICS

    for result in (tiny_run / "results" / "eval").rglob("*.json"):
        if not is_course_index(result.name):  # a course index lists results
            assert read_examples(result) is not None  # exists, and its SHA-256 matches
    row = long[long["file"].str.endswith("tiny_anomaly/flow-digit1-seed0/anomaly.json")].iloc[0]
    ex = read_examples(tiny_run / row["file"])
    values = {"score": ex["score"].to_numpy(), "label": ex["label"].to_numpy()}
    assert STATISTICS["auprc"](values)[0] == pytest.approx(row["value"])
    assert (tiny_run / "results" / "figures" / "tiny_anomaly_curves.png").exists()
    assert (tiny_run / "results" / "figures" / "tiny_generation_test_steps.png").exists()
    assert len(list((tiny_run / "results" / "configs").rglob("*.yaml"))) == 14
    # every rule has a log; training and evaluation rules have benchmarks
    assert list((tiny_run / "results" / "benchmarks" / "train").rglob("*.tsv"))
    assert list((tiny_run / "results" / "benchmarks" / "eval_fid").rglob("*.tsv"))


def test_report_opens_on_the_question_with_the_comparison_first(
    tiny_run: Path, tmp_path: Path
) -> None:
    """`snakemake --report`: the landing text (workflow/report/workflow.rst) says where the
    answer is, and the comparison's table and forest plot are in its first category."""
    report = tmp_path / "report.html"
    r = _snakemake(tiny_run, "--report", str(report), "--configfile", "config/scenarios/tiny.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    html = report.read_text()
    assert "is the latent normalizing-flow prior (LFBM) better than its baselines" in html
    assert "1. Comparison" in html and "comparison.csv" in html
    assert "comparison_forest.png" in html and "at least two seeds" in html


def test_mlflow_store_has_one_run_per_model_with_metrics(tiny_run: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tiny_run / 'results' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["lsnf-tiny"])
    assert len(runs) == 14
    keys = set(runs["tags.lsnf.run_key"])
    assert "tiny_anomaly/flow-digit1-seed0" in keys and "tiny_generation/ebm-seed0" in keys
    anomaly = runs[runs["tags.lsnf.experiment"] == "tiny_anomaly"]
    assert anomaly["metrics.anomaly_auprc"].between(0, 1).all()
    assert anomaly["metrics.loss_g"].notna().all()  # per-epoch training metrics
    assert (anomaly["params.prior.kind"].sort_values() == ["ebm", "flow", "gaussian"]).all()
    gen = runs[runs["tags.lsnf.experiment"] == "tiny_generation"]
    assert gen["metrics.fid.lsnf-domain-cnn"].notna().all()
    assert gen["metrics.reconstruction_mse.test"].notna().all()
    rec = runs[runs["tags.lsnf.experiment"] == "tiny_recovery"]
    assert rec["metrics.recovery_mse"].notna().all()
    assert set(rec["params.data.corruption.kind"]) == {"salt_pepper", "random_square"}
    assert (runs["status"] == "FINISHED").all()
    # 2s-ABP's run starts before its flow fit, so its duration holds the fit's seconds
    from lsnf.io import read_json_lines

    two = runs[runs["tags.lsnf.run_key"] == "tiny_generation/abp2s-seed0"].iloc[0]
    metrics = tiny_run / "results/models/tiny_generation/abp2s-seed0/metrics.jsonl"
    fit_s = sum(r["seconds"] for r in read_json_lines(metrics) if r.get("stage") == 2)
    assert (two["end_time"] - two["start_time"]).total_seconds() >= fit_s > 0


def _mlflow_snapshot(uri: str, experiment: str) -> dict:
    """Per run key: metric histories (key, step, value), params, lsnf tags, dataset inputs,
    artifact paths and status, as the MLflow API reads them back."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    out = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        rid = r.info.run_id
        history = sorted(
            (k, m.step, m.value) for k in r.data.metrics for m in client.get_metric_history(rid, k)
        )
        artifacts = sorted(
            a.path for d in ("results", "grids", "training") for a in client.list_artifacts(rid, d)
        )
        inputs = sorted(
            (d.dataset.name, d.dataset.digest, tuple(t.value for t in d.tags))
            for d in r.inputs.dataset_inputs
        )
        tags = {k: v for k, v in r.data.tags.items() if k.startswith("lsnf.")}
        out[r.data.tags["lsnf.run_key"]] = {
            "history": history,
            "params": r.data.params,
            "tags": tags,
            "inputs": inputs,
            "artifacts": artifacts,
            "status": r.info.status,
        }
    return out


def test_mlflow_runs_carry_tags_datasets_and_artifacts(tiny_run: Path) -> None:
    runs = _mlflow_snapshot(f"sqlite:///{tiny_run / 'results' / 'mlflow.db'}", "lsnf-tiny")
    flow = runs["tiny_anomaly/flow-digit1-seed0"]
    assert (
        flow["tags"]
        | {
            "lsnf.prior": "flow",
            "lsnf.seed": "0",
            "lsnf.held_out_digit": "1",
            "lsnf.experiment": "tiny_anomaly",
        }
        == flow["tags"]
    )
    assert runs["tiny_recovery/gaussian-sp30-seed0"]["tags"]["lsnf.mask"] == "sp30"
    names = {(name, context) for name, _, (context,) in flow["inputs"]}
    assert names == {("mnist/train/digit1", "training"), ("mnist/test/digit1", "evaluation")}
    assert all(len(digest) == 16 for _, digest, _ in flow["inputs"])
    assert {
        "results/anomaly.json",
        "results/anomaly.examples.parquet",
        "grids/samples.png",
        "training/data.json",
    } <= set(flow["artifacts"])
    assert {k for k, _, _ in flow["history"]} >= {"anomaly_auprc", "anomaly_auroc", "loss_g"}
    gen = runs["tiny_generation/ebm-seed0"]
    assert "results/fid.features.npz" in gen["artifacts"]


def test_track_sync_fills_a_fresh_store_like_the_workflow_and_changes_nothing_twice(
    tiny_run: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from workflow_helpers import ROOT

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    sync = [
        sys.executable,
        "-m",
        "lsnf.cli",
        "track",
        "sync",
        "--results-dir",
        str(tiny_run / "results"),
        "--mlflow-uri",
        fresh,
        "--mlflow-experiment",
        "lsnf-tiny",
    ]
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "synced 14 runs" in r.stdout
    workflow = _mlflow_snapshot(f"sqlite:///{tiny_run / 'results' / 'mlflow.db'}", "lsnf-tiny")
    first = _mlflow_snapshot(fresh, "lsnf-tiny")
    assert first == workflow
    r = subprocess.run(sync, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _mlflow_snapshot(fresh, "lsnf-tiny") == first


def test_deleting_one_evaluation_reruns_only_that_job(tiny_run: Path) -> None:
    target = (
        tiny_run / "results" / "eval" / "tiny_anomaly" / "gaussian-digit1-seed0" / "anomaly.json"
    )
    target.unlink()
    dry = _snakemake(tiny_run, "-n", "--cores", "2", "--configfile", "config/scenarios/tiny.yaml")
    assert dry.returncode == 0, dry.stderr
    out = dry.stdout + dry.stderr
    assert "eval_anomaly" in out and "tables" in out
    for rule in ("train ", "prepare_data", "fid_reference", "eval_fid", "eval_samples"):
        assert f"\n{rule}" not in out.split("Job stats:")[1], out
    r = _snakemake(tiny_run, "--cores", "2", "--configfile", "config/scenarios/tiny.yaml")
    assert r.returncode == 0 and target.exists()
    assert "localrule train:" not in r.stdout + r.stderr


def _latest(uri: str, run_key: str, metric: str) -> float:
    """MLflow's latest value of ``metric`` in the run of ``run_key``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lsnf-tiny")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`lsnf.run_key` = '{run_key}'")
    return run.data.metrics[metric]


def test_a_refused_result_keeps_the_tables_and_mlflow_holds_only_the_files(
    tiny_run: Path, tmp_path: Path
) -> None:
    """#28 B2, B3, B4, B5: an edited value and an edited identity are refused by the tables and
    by the MLflow job alike; the last tables stay as they were; MLflow converges to the files
    once they are restored (a rerun, `lsnf track sync`); a deleted model.pt is planned again."""
    import json

    from workflow_helpers import TINY, lsnf_cli

    work = tmp_path / "work"
    shutil.copytree(tiny_run, work, symlinks=True)
    results = work / "results"
    uri = f"sqlite:///{results / 'mlflow.db'}"
    tables = {p: p.read_bytes() for p in (results / "tables").iterdir()}
    valued = results / "eval/tiny_generation/flow-seed0/reconstruction.json"
    labelled = results / "eval/tiny_anomaly/flow-digit1-seed0/anomaly.json"
    originals = {p: p.read_text() for p in (valued, labelled)}
    record = json.loads(originals[valued])
    metric, true = "reconstruction_mse.test", record["value"]
    assert _latest(uri, "tiny_generation/flow-seed0", metric) == true
    valued.write_text(json.dumps({**record, "value": 1.5 * true}))
    record = json.loads(originals[labelled])
    labelled.write_text(
        json.dumps({**record, "identity": {**record["identity"], "prior": "gaussian"}})
    )

    r = _snakemake(work, "--cores", "2", "--keep-going", "--configfile", TINY)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    for rule in ("tables", "track_evaluations"):
        assert f"Error in rule {rule}" in out, out[-3000:]
    from lsnf import layout

    track_log = (work / layout.log("track_evaluations", "all")).read_text()
    assert "2 result(s) fail the tables' checks" in track_log, track_log
    assert "recomputed from its per-example file" in track_log
    assert "the model's prior is 'flow', not 'gaussian'" in track_log
    assert {p: p.read_bytes() for p in (results / "tables").iterdir()} == tables
    assert _latest(uri, "tiny_generation/flow-seed0", metric) == true  # nothing was logged

    # an edited value that MLflow took in (as lsnf before #28 B2 did) goes once the file is back
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("lsnf-tiny")
    (run,) = client.search_runs(
        [exp.experiment_id], "tags.`lsnf.run_key` = 'tiny_generation/flow-seed0'"
    )
    client.log_metric(run.info.run_id, metric, 1.5 * true, step=0)
    for path, text in originals.items():
        path.write_text(text)
    sync = lsnf_cli("track", "sync", "--results-dir", "results", "--mlflow-uri", uri,
                    "--mlflow-experiment", "lsnf-tiny", cwd=work)  # fmt: skip
    assert sync.returncode == 0, sync.stderr[-3000:]
    assert _latest(uri, "tiny_generation/flow-seed0", metric) == true
    r = _snakemake(work, "--cores", "2", "--configfile", TINY)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]

    # B5: a deleted model.pt is trained again (from its complete checkpoint), and what uses it
    (results / "models/tiny_anomaly/gaussian-digit1-seed0/model.pt").unlink()
    planned = _planned_jobs(work, TINY)
    assert ("train", "exp=tiny_anomaly, run=gaussian-digit1-seed0") in planned
    assert ("eval_anomaly", "exp=tiny_anomaly, run=gaussian-digit1-seed0") in planned


def _planned_jobs(work: Path, configfile: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans."""
    r = _snakemake(work, "-n", "--cores", "2", "--configfile", configfile)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs, rule = set(), None
    for line in r.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobs.add((rule, ""))
        elif line.strip().startswith("wildcards:") and rule is not None:
            jobs.discard((rule, ""))
            jobs.add((rule, line.split(":", 1)[1].strip()))
    return jobs


def _downstream_of_training(exp: str, runs: list[str], evals: list[str]) -> set[tuple[str, str]]:
    train = lambda run: "train_two_stage" if run.startswith("abp2s-") else "train"
    jobs = {
        (rule, f"exp={exp}, run={run}")
        for run in runs
        for rule in ("run_config", train(run), *evals)
    }
    once = {("curves", f"exp={exp}"), ("tables", ""), ("track_evaluations", ""), ("all", "")}
    return jobs | once


def test_content_of_the_configs_decides_what_reruns(tiny_run: Path) -> None:
    """Editing a run config file reruns exactly the trainings that use it and their downstream
    jobs; editing one experiment's `set:` reruns that experiment's; no edit, no job."""
    import yaml

    tiny = "config/scenarios/tiny.yaml"
    assert _planned_jobs(tiny_run, tiny) == set()
    # 1. a key of the run config file that only tiny_anomaly uses
    run_config = tiny_run / "config/models/mnist_anomaly.yaml"
    original = run_config.read_text()
    try:
        run_config.write_text(original.replace("sigma: 0.3", "sigma: 0.5"))
        anomaly_runs = [f"{p}-digit1-seed0" for p in ("flow", "gaussian", "ebm")]
        assert _planned_jobs(tiny_run, tiny) == _downstream_of_training(
            "tiny_anomaly", anomaly_runs, ["eval_anomaly", "eval_samples"]
        )
    finally:
        run_config.write_text(original)
    # 2. one experiment's `set:` (its own copy: the scenario shares one block by a YAML alias)
    cfg = yaml.safe_load((tiny_run / tiny).read_text())
    gen = cfg["experiments"]["tiny_generation"]
    gen["set"] = {**gen["set"], "model.sigma": 0.5}
    (tiny_run / "edited.yaml").write_text(yaml.safe_dump(cfg))
    generation_runs = [f"{p}-seed0" for p in ("flow", "gaussian", "ebm", "abp2s")]
    assert _planned_jobs(tiny_run, "edited.yaml") == _downstream_of_training(
        "tiny_generation", generation_runs, ["eval_reconstruction", "eval_fid", "eval_samples"]
    ) | {("test_steps_curve", "exp=tiny_generation")}
    # 3. one evaluation setting: its settings file, the evaluations that take it, downstream
    cfg = yaml.safe_load((tiny_run / tiny).read_text())
    cfg["experiments"]["tiny_generation"]["evaluation"]["test_steps"] = 4  # not FID's, nor grids'
    (tiny_run / "edited.yaml").write_text(yaml.safe_dump(cfg))
    assert _planned_jobs(tiny_run, "edited.yaml") == {
        ("eval_settings", "exp=tiny_generation, stem=reconstruction"),
        *[("eval_reconstruction", f"exp=tiny_generation, run={r}") for r in generation_runs],
        ("test_steps_curve", "exp=tiny_generation"),
        ("tables", ""),
        ("track_evaluations", ""),
        ("all", ""),
    }
    # 4. restored: nothing to do again
    assert _planned_jobs(tiny_run, tiny) == set()


def test_paper_config_dry_run_shows_the_dag(tmp_path: Path) -> None:
    import yaml

    work = _copy_project(tmp_path)
    paper = yaml.safe_load((work / "config" / "paper.yaml").read_text())
    assert all(e.get("enabled", True) for e in paper["experiments"].values())  # none disabled
    r = _snakemake(work, "-n", "--cores", "all", "--configfile", "config/paper.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    counts = {}
    for line in r.stdout.split("Job stats:")[1].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    # anomaly 5 digits x 3 priors x 3 seeds; generation 3 datasets x 3 priors x 3 seeds;
    # inpainting 3 priors x 3 seeds; recovery 6 masks x 3 priors x 3 seeds
    assert counts["train"] == 45 + 27 + 9 + 54, counts
    assert counts["eval_anomaly"] == 45 and counts["eval_fid"] == 27
    assert counts["eval_inpainting"] == 9 * 2 and counts["eval_recovery"] == 54
    assert counts["fid_reference"] == 3 and counts["prepare_data"] == 4


def test_slurm_profile_as_documented_dry_runs(tmp_path: Path) -> None:
    """`snakemake --cores all --profile slurm` from the repo root finds ./slurm (a link to
    profiles/slurm) and plans SLURM jobs with the GPU request for training."""
    work = _copy_project(tmp_path)
    r = _snakemake(
        work, "-n", "--cores", "all", "--profile", "slurm", "--configfile", "config/paper.yaml"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "gpu=1" in out and "mem_mb=32000" in out and "runtime=1440" in out  # config resources


def test_lint_finds_nothing_but_the_absent_conda_environments() -> None:
    """The rules declare no conda environments on purpose (docs/running.md, "Software environment");
    every other lint would fail here."""
    r = _snakemake(ROOT, "--lint")
    lints = [
        line.strip() for line in (r.stdout + r.stderr).splitlines() if line.strip().startswith("* ")
    ]
    assert lints, r.stdout[-3000:] + r.stderr[-3000:]
    assert set(lints) == {"* Specify a conda environment or container for each rule.:"}, lints


def test_evaluation_block_reaches_every_evaluation_through_its_settings_file(
    tmp_path: Path,
) -> None:
    """test_steps, step_size, n_test, batch_size and seed of an experiment's `evaluation:`
    block reach anomaly, reconstruction, inpainting and recovery alike, through the settings
    file each job reads (and that the rule writes before it)."""
    import yaml

    from lsnf.evaluation.registry import for_task
    from lsnf.pipeline import plan

    work = _copy_project(tmp_path)
    cfg = yaml.safe_load((work / "config/scenarios/tiny.yaml").read_text())
    for exp in cfg["experiments"].values():
        exp["evaluation"].update(test_steps=7, step_size=0.07, batch_size=25, seed=3)
    (work / "eval.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(work, "-n", "-p", "--cores", "1", "--configfile", "eval.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    commands = [line for line in r.stdout.splitlines() if " eval " in line]
    validate = pytest.importorskip("snakemake.utils").validate
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"), set_default=True)
    for name in ("anomaly", "reconstruction", "inpainting", "recovery"):
        lines = [c for c in commands if f" eval {name} " in c]
        assert lines and all(" --settings results/settings/" in c for c in lines), name
        (exp,) = [e for e, x in cfg["experiments"].items() if name in
                  {ev.name for ev in for_task(x["task"])}]  # fmt: skip
        stem = f"{name}-center" if name == "inpainting" else name
        settings = plan.evaluation_settings(cfg, exp, stem)
        assert (settings.test_steps, settings.step_size) == (7, 0.07), name
        assert (settings.batch_size, settings.seed) == (25, 3), name
        assert settings.n_test == cfg["experiments"][exp]["evaluation"]["n_test"], name


def test_min_seeds_reaches_the_tables_job(tmp_path: Path) -> None:
    """The workflow's `min_seeds` (docs/method.md §9) reaches `lsnf tables`; 0 is refused."""
    import yaml

    work = _copy_project(tmp_path)
    cfg = yaml.safe_load((work / "config/scenarios/tiny.yaml").read_text())
    for seeds, ok in ((3, True), (0, False)):
        (work / "seeds.yaml").write_text(yaml.safe_dump({**cfg, "min_seeds": seeds}))
        r = _snakemake(work, "-n", "-p", "--cores", "1", "--configfile", "seeds.yaml")
        assert (r.returncode == 0) == ok, r.stderr[-3000:]
        tables = [line for line in r.stdout.splitlines() if "lsnf tables " in line]
        assert len(tables) == ok and (not ok or " --min-seeds 3 " in tables[0])
    assert "min_seeds" in r.stderr + r.stdout and not (work / "results").exists()


# A value that runs a command if it reaches a shell unquoted (issue #28, B1): each names the
# file it would create. The space makes it two words if it were split.
def _planted(tag: str) -> str:
    return f"my $(touch HACKED_{tag}) ;x"


def _shell_commands(dry_run_output: str) -> list[str]:
    """The job commands a `snakemake -n -p` run prints; one that writes a resolved config spans
    several lines (its text, quoted), so lines join until the quotes close."""
    import shlex

    prefix, commands, lines = "Shell command: ", [], iter(dry_run_output.splitlines())
    for line in lines:
        if not line.startswith(prefix) or line == f"{prefix}None":
            continue
        command = line.removeprefix(prefix)
        while True:
            try:
                shlex.split(command)
                break
            except ValueError:  # an open quote: the command goes on
                command += "\n" + next(lines)
        commands.append(command)
    return commands


@pytest.mark.parametrize("extractor", ["lsnf-domain-cnn", "inception-v3-compat"])
def test_no_config_value_reaches_a_shell_unquoted(tmp_path: Path, extractor: str) -> None:
    """Every user-given path and name (run configs, data root, MLflow store and experiment, FID
    weights) reaches every job's shell command as one quoted argument: running each planned
    command (with `lsnf` a no-op) creates no file, and splits back into the planted value."""
    import shlex
    import subprocess

    import yaml

    work = _copy_project(tmp_path / "work")
    cfg = yaml.safe_load((work / "config/scenarios/tiny.yaml").read_text())
    planted = {}
    for i, exp in enumerate(cfg["experiments"].values()):
        path = f"cfg/{_planted(f'rc{i}')}.yaml"
        (work / path).parent.mkdir(exist_ok=True)
        (work / path).write_text((work / exp["run_config"]).read_text())
        exp["run_config"] = planted[f"rc{i}"] = path
    cfg["data_root"] = planted["root"] = f"data/{_planted('root')}"
    cfg["mlflow"]["tracking_uri"] = planted["uri"] = f"sqlite:///{_planted('uri')}.db"
    cfg["mlflow"]["experiment"] = planted["mlexp"] = _planted("mlexp")
    if extractor == "inception-v3-compat":
        cfg["fid"].update(extractor=extractor, weights=f"w/{_planted('weights')}.pth")
        planted["weights"] = cfg["fid"]["weights"]
        (work / "w").mkdir()
        (work / planted["weights"]).write_bytes(b"not read by a dry run")
    (work / "planted.yaml").write_text(yaml.safe_dump(cfg))

    r = _snakemake(work, "-n", "-p", "--cores", "1", "--configfile", "planted.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    commands = _shell_commands(r.stdout + r.stderr)
    rules = {line.split("rule ")[1].rstrip(":") for line in (r.stdout + r.stderr).splitlines()
             if line.startswith(("rule ", "localrule "))}  # fmt: skip
    assert {"prepare_data", "train", "eval_fid", "tables", "track_evaluations"} <= rules
    assert len(commands) >= 20, r.stderr[-3000:]
    # each value arrives whole, as one argument (or inside one, as `--set data.root=...`), in
    # every command that carries it; run configs reach the data jobs of their dataset only
    reached = set()
    for command in commands:
        words = shlex.split(command)
        for tag, value in planted.items():
            if f"HACKED_{tag})" in command:
                reached.add("rc" if tag.startswith("rc") else tag)
                assert any(value in w for w in words), (tag, command)
    assert reached == {"rc", "root", "uri", "mlexp"} | ({"weights"} & planted.keys()), reached
    # and nothing runs: every command under bash, `lsnf` a function that does nothing
    run_dir = tmp_path / "run"
    shutil.copytree(work, run_dir)
    for command in commands:
        subprocess.run(
            ["bash", "-c", f"lsnf() {{ :; }}; {command}"], cwd=run_dir, capture_output=True
        )
    made = sorted(p.name for p in run_dir.rglob("HACKED_*") if "$(" not in str(p))
    assert made == [], made


def test_every_value_in_a_rule_command_is_quoted() -> None:
    """The convention behind the test above, for rules a scenario may not plan: each `{...}` in a
    rule's `shell:` strings carries Snakemake's `:q`."""
    import re

    found = 0
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        blocks = re.findall(r"shell:\n((?:\s+f?\"[^\n]*\"\n)+)", smk.read_text())
        for block in blocks:
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", block):
                found += 1
                assert field.endswith(":q"), f"{smk.name}: {{{field}}} is not quoted"
    assert found > 40, found


def test_misspelt_key_fails_before_any_job(tmp_path: Path) -> None:
    work = _copy_project(tmp_path)
    bad = (
        (work / "config" / "scenarios" / "tiny.yaml")
        .read_text()
        .replace("n_samples:", "n_sampels:")
    )
    (work / "bad.yaml").write_text(bad)
    r = _snakemake(work, "--cores", "1", "--configfile", "bad.yaml")
    assert r.returncode != 0
    assert "n_sampels" in r.stderr + r.stdout
    assert not (work / "results").exists()


@pytest.mark.slow
def test_the_workflow_runs_as_a_snakemake_module_from_a_directory_of_two_files(
    tmp_path: Path,
) -> None:
    """#28 A2: a directory holding only a config and a Snakefile that uses lsnf's workflow as a
    module (the catalog's standardized usage) runs the tiny scenario's anomaly experiment; its
    run config is lsnf's shipped one, everything it writes is under that directory."""
    import pandas as pd
    import yaml
    from workflow_helpers import TINY

    use = tmp_path / "use"
    use.mkdir()
    cfg = yaml.safe_load((ROOT / TINY).read_text())
    cfg["experiments"] = {"tiny_anomaly": cfg["experiments"]["tiny_anomaly"]}
    assert not (use / cfg["experiments"]["tiny_anomaly"]["run_config"]).exists()
    (use / "config.yaml").write_text(yaml.safe_dump(cfg))
    (use / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        f'module lsnf:\n    snakefile:\n        "{ROOT / "workflow" / "Snakefile"}"\n'
        "    config:\n        config\n\n\nuse rule * from lsnf\n"
    )
    r = _snakemake(use, "--cores", "2")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    table = pd.read_csv(use / "results/tables/anomaly.csv")
    assert table["model"].str.contains("[lsnf: tiny_anomaly]", regex=False).sum() == 3
    assert (use / "results/tables/comparison.md").read_text().startswith("**4 comparisons")
    shipped = yaml.safe_load((ROOT / "config/models/mnist_anomaly.yaml").read_text())
    used = yaml.safe_load((use / "results/configs/tiny_anomaly/flow-digit1-seed0.yaml").read_text())
    assert used["model"]["sigma"] == shipped["model"]["sigma"]
    assert (use / "results/mlflow.db").is_file()  # its onstart handler ran too
    assert sorted(p.name for p in use.iterdir() if not p.name.startswith(".")) == [
        "Snakefile",
        "config.yaml",
        "results",
    ]


@pytest.mark.slow
def test_a_prior_that_diverges_is_a_failed_row_and_the_benchmark_completes(tmp_path: Path) -> None:
    """#28 A3 (docs/method.md §6.7): the tiny generation experiment with LEBM at a prior
    learning rate that diverges (a non-finite loss in its first epoch) completes; LEBM's results
    record why it failed, the generation table and the comparison say "failed to train" with
    the reason, and LFBM − ABP and LFBM − 2s-ABP are compared as before. (A 2s-ABP of an ABP
    that failed: tests/training/test_training.py.)"""
    import json

    import pandas as pd
    import yaml
    from workflow_helpers import TINY

    work = _copy_project(tmp_path / "work")
    cfg = yaml.safe_load((ROOT / TINY).read_text())
    cfg["experiments"] = {"tiny_generation": cfg["experiments"]["tiny_generation"]}
    cfg["experiments"]["tiny_generation"]["prior_set"] = {"ebm": {"prior.lr": 1e8}}
    cfg["mlflow"]["enabled"] = False
    (work / "diverge.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(work, "--cores", "2", "--configfile", "diverge.yaml")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    ev = work / "results/eval/tiny_generation"
    lebm = json.loads((ev / "ebm-seed0/fid.json").read_text())
    assert lebm["value"] is None and lebm["n"] == 0 and lebm["kid"] is None
    assert lebm["failed"]["reason"].startswith("non-finite") and lebm["failed"]["epoch"] == 1
    recon = json.loads((ev / "ebm-seed0/reconstruction.json").read_text())
    assert recon["failed"] == lebm["failed"] and recon["identity"]["prior"] == "ebm"
    assert json.loads((ev / "flow-seed0/fid.json").read_text())["value"] > 0

    tables = work / "results/tables"
    comparison = pd.read_csv(tables / "comparison.csv")
    by = comparison.set_index(["comparison", "metric"])["verdict"]
    assert by[("LFBM − LEBM", "FID")] == f"failed to train: LEBM ({lebm['failed']['text']})"
    assert by[("LFBM − LEBM", "MSE")].startswith("failed to train: LEBM (non-finite")
    # the others are compared (at this size the trivial-reference rule may call them failed,
    # §6.5, but with an interval: they have numbers)
    others = comparison[~comparison["comparison"].eq("LFBM − LEBM")]
    assert not others["verdict"].str.contains("non-finite").any()
    assert others["lo"].notna().all()
    diverged = comparison["verdict"].str.contains("non-finite")
    assert diverged.sum() == 5 and comparison.loc[diverged, "lo"].isna().all()  # MSE, 4 of FID
    summary = (tables / "comparison.md").read_text().splitlines()[0]
    assert "failed to train" in summary and "failed to train)" not in summary
    generation = (tables / "generation.md").read_text()
    assert f"failed to train: {lebm['failed']['text']}" in generation
    measured = pd.read_csv(tables / "measurements.csv")
    assert set(measured.loc[measured["failed"].notna(), "prior"]) == {"ebm"}


@pytest.mark.slow
def test_paper_mnist_scenario_runs_one_epoch_on_a_slice(tmp_path: Path) -> None:
    """config/scenarios/mnist_paper_digit1.yaml as shipped, cut to one epoch on 600 training
    images and K_test = 5 on 200 test images: the smoke test of the paper's protocol (full
    MNIST from torchvision's layout; `bash .ci/fetch-mnist data` places it, as CI does)."""
    import pandas as pd
    import yaml

    if not (ROOT / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip("the full MNIST is not in data/MNIST/raw: run `bash .ci/fetch-mnist data`")
    work = _copy_project(tmp_path)
    scenario = "config/scenarios/mnist_paper_digit1.yaml"
    cfg = yaml.safe_load((work / scenario).read_text())
    exp = cfg["experiments"]["mnist_paper"]
    assert exp["set"]["data.source"] == "torchvision" and exp["evaluation"]["test_steps"] == 400
    assert exp["held_out_digits"] == [1] and "precision" in exp["set"]
    cfg["data_root"] = str(ROOT / "data")
    cfg["mlflow"]["enabled"] = False
    exp["set"].update({"train.epochs": 1, "data.limit": 600})
    exp["evaluation"].update({"test_steps": 5, "n_test": 200, "grid_samples": 16})
    (work / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(work, "--cores", "2", "--configfile", "smoke.yaml")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = pd.read_csv(work / "results/tables/anomaly.csv")
    measured = table[table["model"].str.contains(r"\[lsnf: mnist_paper\]")]
    assert len(measured) == 3 and measured["digit1_mean"].between(0, 1).all()
    assert measured["setting"].str.contains("mnist \\(torchvision\\)").all()
    assert measured["setting"].str.contains("fp32").all()
    lebm = table[table["model"] == "LEBM [paper]"].iloc[0]
    assert lebm["digit1_mean"] == pytest.approx(0.336) and lebm["digit1_std"] == 0.008


TOY_EVALUATION = '''"""A toy evaluation, in this one file: its function and its registry entry."""
import numpy as np
import pandas as pd
import torch

from lsnf.data.splits import load_split
from lsnf.core.pixels import to_model_scale
from lsnf.evaluation.registry import Evaluation, Value, register
from lsnf.evaluation.results import Outcome, make_result


def toy(trained, ev):
    """Per test image, its squared distance to g(0) (a model-dependent number)."""
    data = load_split(trained.config.data, ev.split).head(ev.n_test)
    x = to_model_scale(data.images).to(trained.device)
    z = torch.zeros(len(data), trained.config.model.latent_dim, device=trained.device)
    with torch.no_grad():
        mse = ((x - trained.model.decode(z)) ** 2).flatten(1).mean(1).double().cpu().numpy()
    record = make_result("toy", float(mse.mean()), len(data), trained, data.describe())
    examples = pd.DataFrame({"example": np.arange(len(data)), "mse": mse})
    return Outcome(record, None, f"toy {mse.mean():.4f}", examples)


register(
    Evaluation(
        "toy",
        ("generation",),
        "toy_evaluation:toy",
        ("n_test", "split"),
        "squared distance of test images to g(0)",
        (Value("value", "mse", "distance to g(0)", 4),),
        condition="dataset",
    )
)
'''


@pytest.mark.slow
def test_an_evaluation_defined_in_one_place_runs_through_the_pipeline(tmp_path: Path) -> None:
    """A new evaluation, one definition in one file that $LSNF_EVALUATIONS names, and nothing
    else edited: Snakemake runs it for every model of its task, it writes its result, it has
    its table and its rows in the comparison, and MLflow has its metric."""
    import json

    import mlflow
    import pandas as pd
    import yaml

    work = _copy_project(tmp_path)
    (work / "toy_evaluation.py").write_text(TOY_EVALUATION)
    cfg = yaml.safe_load((work / "config/scenarios/tiny.yaml").read_text())
    generation = {**cfg["experiments"]["tiny_generation"], "priors": ["flow", "gaussian"]}
    cfg["experiments"] = {"tiny_generation": generation}
    (work / "toy.yaml").write_text(yaml.safe_dump(cfg))
    env = {"LSNF_EVALUATIONS": "toy_evaluation", "PYTHONPATH": f"{ROOT}:{work}"}
    r = _snakemake(work, "--cores", "2", "--configfile", "toy.yaml", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "eval_toy" in log.split("Job stats:")[1].split("Select jobs")[0]  # in the DAG
    results = work / "results"
    record = json.loads((results / "eval/tiny_generation/flow-seed0/toy.json").read_text())
    assert record["evaluation"] == "toy" and record["identity"]["run"] == "flow-seed0"
    assert (results / "eval/tiny_generation/flow-seed0/toy.examples.parquet").is_file()
    table = pd.read_csv(results / "tables/toy.csv")
    assert len(table) == 2 and table["mnist_mse_mean"].gt(0).all()
    comparison = pd.read_csv(results / "tables/comparison.csv")
    toy = comparison[comparison["evaluation"] == "toy"]
    assert list(toy["metric"]) == ["distance to g(0)"] and toy["lo"].le(toy["hi"]).all()
    mlflow.set_tracking_uri(f"sqlite:///{results / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["lsnf-tiny"])
    assert runs["metrics.toy_mse"].gt(0).all() and len(runs) == 2
