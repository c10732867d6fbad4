# Everything that is not a rule: config validation, wildcard constraints, target lists and
# small helpers. Every value in a rule's shell command is quoted by Snakemake's `:q` (lists item
# by item): flags that carry a value are argument lists (plan.option), never preformatted
# strings, so a path like `$(touch PWNED).yaml` stays one argument (tests/pipeline/test_workflow.py).
# The planning logic itself lives in lsnf.pipeline.plan (tested on its own); defaults live in
# workflow/schemas/config.schema.yaml (filled in here) and lsnf.config.
import os
import shlex
import sys

from snakemake.utils import validate

from lsnf import layout
from lsnf.pipeline import plan
from lsnf.pipeline.plan import option
from lsnf.run_ids import run_key
from lsnf.tracking.store import init_store
from lsnf.tracking.sync import failure_report
from lsnf.config import DATA_KEY_PATTERN, EXTRACTORS, TWO_STAGE
from lsnf.evaluation.registry import EVALUATIONS
from lsnf.analysis.tables import table_names

validate(config, "../schemas/config.schema.yaml", set_default=True)
# lsnf's published numbers, beside this workflow (also when it runs as a module elsewhere)
SHIPPED_REFERENCE = workflow.source_path("../../config/paper_reference.yaml")
EXPERIMENTS = plan.enabled_experiments(config)
for _name in EXPERIMENTS:
    plan.check_experiment(config, _name)
plan.check_versus(config)  # fail before any job, naming the key

# Rules call the `lsnf` CLI of the environment that runs Snakemake (the project's .venv, also
# on SLURM, where jobs re-run Snakemake with the submitting interpreter): put its bin/ first.
# No conda environments: docs/running.md ("Software environment") says why.
shell.prefix(
    f'set -euo pipefail; export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; '
)


wildcard_constraints:
    exp="[a-z0-9_]+",
    run=plan.RUN_PATTERN,
    data=DATA_KEY_PATTERN,
    split="train|test",
    extractor="|".join(EXTRACTORS),
    row="|".join(layout.FID_ROWS),
    mask=plan.MASK_TAG_PATTERN,
    stem="|".join(
        f"{e.name}-({plan.MASK_TAG_PATTERN})" if e.per_mask else e.name
        for e in EVALUATIONS.values()
    ),


# Every path under results/ comes from lsnf.layout; these are its patterns of one model.
REPORT = os.path.join(workflow.basedir, "workflow", "report")  # the report's captions
RUN_CONFIG = layout.run_config("{exp}", "{run}")  # the resolved run config (rule run_config)
MODEL = layout.model("{exp}", "{run}")


def result(name):
    """The pattern of a model's evaluation output ``name`` (a result JSON or a grid)."""
    return layout.result("{exp}", "{run}", name)


def eval_job(ev):
    """An evaluation job's name among its rule's jobs, in logs and benchmarks; one per model,
    or per model and mask."""
    return "{exp}/{run}/{mask}" if ev.per_mask else "{exp}/{run}"


def eval_outputs(ev):
    """The outputs of evaluation ``ev`` (lsnf.evaluation.registry): result JSON and its per-example file,
    and its grid (in the report)."""
    out = {}
    if ev.result:
        out["result"] = result(f"{ev.stem}.json")
        out["examples"] = layout.examples(out["result"], ev.arrays)
        out["course"] = layout.course_index(out["result"])  # the snapshots' results (§9.1)
    if ev.grid:
        caption = f"{ev.name}.rst" if os.path.exists(f"{REPORT}/{ev.name}.rst") else "grid.rst"
        labels = {"model": "{run}", **({"mask": "{mask}"} if ev.per_mask else {})}
        out["grid"] = report(
            result(f"{ev.stem}.png"),
            caption=f"../report/{caption}",
            category=ev.grid_title,
            subcategory="{exp}",
            labels=labels,
        )
    return out


def eval_out_flags(ev):
    """The `lsnf eval` flags that name its outputs (an argument list)."""
    if not ev.result:
        return lambda wildcards, output: option("--out", output.grid)
    if not ev.grid:
        return lambda wildcards, output: [*option("--out", output.result), "--course"]
    return lambda wildcards, output: [
        *option("--out", output.result),
        *option("--grid", output.grid),
        "--course",
    ]


def settings_inputs(ev):
    """The files an evaluation's settings name (FID's reference and extractor weights)."""
    return lambda w: plan.evaluation_settings(
        config, w.exp, ev.stem.format(mask=w.get("mask"))
    ).inputs()


# Jobs whose MLflow logging failed append a line here; the run's end names them.
TRACKING_FAILURES = layout.tracking_failures()
TRACKING_FAILURES_OFFSET = (
    os.path.getsize(TRACKING_FAILURES) if os.path.exists(TRACKING_FAILURES) else 0
)


def mlflow_flags():
    """Where a job that logs to MLflow logs, and where it notes a failure (an argument list)."""
    m = config["mlflow"]
    return [
        *option("--mlflow-uri", m["tracking_uri"]),
        *option("--mlflow-experiment", m["experiment"]),
        *option("--mlflow-failure-log", TRACKING_FAILURES),
    ]


def run_flags(wildcards):
    """CLI flags that say which model a job is about (recorded in its results) and, for a
    training job when tracking is on, log it live into that model's MLflow run."""
    flags = option("--run-key", run_key(wildcards.exp, wildcards.run))
    return [*flags, "--track", *mlflow_flags()] if config["mlflow"]["enabled"] else flags


def eval_run_flags(wildcards):
    """An evaluation job's flags: which model its results are about. It does not open MLflow
    (rule track_evaluations logs every evaluation's outputs, in one process)."""
    return option("--run-key", run_key(wildcards.exp, wildcards.run))


onstart:
    # The workflow's process creates the MLflow store before jobs open it in parallel (a fresh
    # SQLite store can otherwise be set up twice at once). Never fails the workflow.
    if config["mlflow"]["enabled"]:
        m = config["mlflow"]
        init_store(m["tracking_uri"], m["experiment"], TRACKING_FAILURES)


def report_tracking_failures():
    """Name the jobs of this run whose MLflow logging failed (printed when the run ends)."""
    summary = failure_report(TRACKING_FAILURES, TRACKING_FAILURES_OFFSET)
    if summary:
        print(summary, file=sys.stderr)


onsuccess:
    report_tracking_failures()


onerror:
    report_tracking_failures()


def job_resources(kind, on_device=True):
    """`resources:` of a job of `kind` (train | evaluate): the config's memory and wall time,
    times Snakemake's attempt (lsnf.pipeline.plan.scaled_resource), and a GPU when the job runs its
    networks on a CUDA `device` (lsnf.pipeline.plan.gpu_resources; on_device=False: CPU-only work).
    """
    scaled = lambda key: lambda wildcards, attempt: plan.scaled_resource(config, kind, key, attempt)
    gpu = plan.gpu_resources(config, on_device)
    return {"mem_mb": scaled("mem_mb"), "runtime": scaled("runtime"), **gpu}


# A local rule's small file (a resolved config or settings) from its `text` param: written whole
# or not at all.
WRITE_TEXT = (
    "printf '%s' {params.text:q} > {output:q}.part 2> {log:q} && mv {output:q}.part {output:q}"
)


def job_log(rule_name, job="{exp}/{run}"):
    return layout.log(rule_name, job)


def job_benchmark(rule_name, job="{exp}/{run}"):
    return layout.benchmark(rule_name, job)


def data_manifest(wildcards):
    return layout.data_manifest(plan.data_key(config, wildcards.exp))


def set_flags(overrides):
    return [arg for o in overrides for arg in option("--set", o)]


def data_sets(key):
    """--set flags that point a data-level job at the dataset of an experiment using it."""
    return set_flags(plan.data_overrides(config, key))


def data_run_config(key):
    return plan.run_config_file(config, plan.experiment_for_data(config, key))


FID_DOWNLOAD = ["--download"] if config["fid"]["download"] else []


def extractor_weights(data):
    """The FID feature extractor's weights: trained by the workflow, or a given file."""
    return plan.extractor_weights(config, data) or []


def all_targets():
    targets = plan.evaluation_targets(config)
    # the models too: a deleted model.pt is trained again (from its complete checkpoint.pt)
    targets += [
        layout.model(name, r.id) for name, exp in EXPERIMENTS.items() for r in plan.runs(exp)
    ]
    if config["mlflow"]["enabled"]:
        targets.append(layout.tracked_evaluations())
    targets += table_outputs()
    targets += [layout.course_figure(exp) for exp in EXPERIMENTS]
    targets += [layout.curves_figure(exp) for exp in EXPERIMENTS]
    targets += [
        layout.test_steps_figure(name)
        for name, exp in EXPERIMENTS.items()
        if exp["task"] == "generation"
    ]
    return targets


def table_outputs():
    tasks = {exp["task"] for exp in EXPERIMENTS.values()}
    names = table_names(tasks, bool(config["versus"]))
    return [layout.table(n, ext) for n in names for ext in layout.TABLE_FORMATS]


def table_caption(path):
    name = os.path.basename(path).removesuffix(".csv")
    return name if name in ("comparison", "course", "cost") else "tables"


def table_category(path):
    """The report's categories, the comparison first."""
    categories = {"comparison": "1. Comparison", "course": "1. Comparison", "cost": "3. Cost"}
    return categories.get(table_caption(path), "2. Tables")
