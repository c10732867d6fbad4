"""Every path under ``results/``: the one home of the layout that the workflow's rules and the
package share (docs/usage.md, "What a run leaves"; docs/protocols.md §9).

Each function returns a POSIX path string, so a rule passes Snakemake wildcards
(``model("{exp}", "{run}")`` is its output pattern) where the package passes names. ``root`` is
the results folder (``results`` for the workflow; the tables and ``lsnf track sync`` take it as
an option). This module imports nothing, so the workflow's and the core's use of it is free.
"""

from __future__ import annotations

__all__ = [
    "BEST",
    "CHECKPOINT",
    "CONFIG",
    "DATA",
    "FID_ROWS",
    "FOREST",
    "METRICS",
    "MODEL",
    "ROOT",
    "SNAPSHOTS",
    "TABLE_FORMATS",
    "benchmark",
    "course_figure",
    "course_index",
    "course_result",
    "curve",
    "curves_figure",
    "data_manifest",
    "eval_dir",
    "eval_settings",
    "examples",
    "extractor",
    "fid_floor",
    "fid_reference",
    "forest_figure",
    "is_course_index",
    "log",
    "model",
    "model_dir",
    "result",
    "run_config",
    "run_key_in",
    "runs_on_disk",
    "snapshot",
    "table",
    "table_file",
    "tables_dir",
    "test_steps_figure",
    "tracking_failures",
]

ROOT = "results"

# A run directory (``lsnf train --out``; results/models/<experiment>/<run>/):
CHECKPOINT = "checkpoint.pt"  # rewritten every epoch
MODEL = "model.pt"  # written once, when every epoch is done: the complete output
BEST = "best.pt"  # train.select: best_validation: the best validation point's parameters so far
METRICS = "metrics.jsonl"  # one line per completed epoch (and the validation point before)
CONFIG = "config.yaml"  # the resolved run config
DATA = "data.json"  # the training split's provenance and images' SHA-256
SNAPSHOTS = "snapshots"  # train.snapshots: model.pt-format files of earlier epochs (the course)

TABLE_FORMATS = ("csv", "md", "tex")  # numbers; display strings (Markdown, LaTeX)
_MODELS, _EVAL = "models", "eval"  # run directories: models/<experiment>/<run>/, eval/...


def run_config(exp: str, run: str, root: str = ROOT) -> str:
    """A model's resolved run config, written by the workflow before its training."""
    return f"{root}/configs/{exp}/{run}.yaml"


def model_dir(exp: str, run: str, root: str = ROOT) -> str:
    return f"{root}/{_MODELS}/{exp}/{run}"


def model(exp: str, run: str, root: str = ROOT) -> str:
    return f"{model_dir(exp, run, root)}/{MODEL}"


def curve(exp: str, run: str, root: str = ROOT) -> str:
    """A model's per-epoch training metrics and validation curves."""
    return f"{model_dir(exp, run, root)}/{METRICS}"


def eval_dir(exp: str, run: str, root: str = ROOT) -> str:
    return f"{root}/{_EVAL}/{exp}/{run}"


def runs_on_disk(root: str = ROOT) -> list[tuple[str, str]]:
    """(experiment, run) of every model or evaluation directory under ``root``, sorted."""
    from pathlib import Path

    found = {
        (p.parent.name, p.name)
        for sub in (_MODELS, _EVAL)
        for p in Path(root, sub).glob("*/*")
        if p.is_dir()
    }
    return sorted(found)


def run_of_output(path: str) -> tuple[str, str, str]:
    """(experiment, run, results root) of an evaluation output (:func:`result`'s paths)."""
    from pathlib import Path

    p = Path(path)
    if p.parent.parent.parent.name != _EVAL:
        raise ValueError(f"{path} is not an evaluation output ({ROOT}/{_EVAL}/EXP/RUN/FILE)")
    return p.parent.parent.name, p.parent.name, str(p.parents[3])


def run_key_in(path: str) -> str | None:
    """``EXPERIMENT/RUN`` of a file in a run directory: an evaluation output
    (``eval/EXP/RUN/FILE``, ``eval/EXP/RUN/course/epoch-N/FILE``) or a model
    (``models/EXP/RUN/model.pt``, ``models/EXP/RUN/snapshots/epoch-N.pt``); None for a path of
    another form."""
    from pathlib import PurePath

    from lsnf.run_ids import run_key

    parts = PurePath(path).parts
    # (the run directories' folder, its depth from the end, the sub-folder between run and file)
    for top, depth, sub in ((_EVAL, 4, ""), (_EVAL, 6, "course"), (_MODELS, 4, ""),
                            (_MODELS, 5, SNAPSHOTS)):  # fmt: skip
        if len(parts) >= depth and parts[-depth] == top and (not sub or parts[3 - depth] == sub):
            return run_key(parts[1 - depth], parts[2 - depth])
    return None


def result(exp: str, run: str, name: str, root: str = ROOT) -> str:
    """An evaluation's output file ``name`` (result JSON or grid) of a model."""
    return f"{eval_dir(exp, run, root)}/{name}"


def snapshot(epoch: int) -> str:
    """A snapshot's file inside its run directory (``train.snapshots``; docs/method.md §9.1)."""
    return f"{SNAPSHOTS}/epoch-{epoch:04d}.pt"


def course_index(result_path: str) -> str:
    """The course of a result: its snapshots' results, listed beside it (``anomaly.json`` ->
    ``anomaly.course.json``); written last, so a listed course is complete."""
    return f"{result_path.removesuffix('.json')}.course.json"


def is_course_index(name: str) -> bool:
    """Whether a file name is a course index (:func:`course_index`), not a result."""
    return name.endswith(".course.json")


def course_result(result_path: str, epoch: int) -> str:
    """The result of a run's snapshot after ``epoch`` epochs, for the result ``result_path``."""
    from pathlib import PurePosixPath

    p = PurePosixPath(result_path)
    return str(p.parent / "course" / f"epoch-{epoch:04d}" / p.name)


def eval_settings(exp: str, stem: str, root: str = ROOT) -> str:
    """An evaluation's resolved settings in an experiment (``stem``: its name, or
    ``{name}-{mask}``), written by the workflow before the evaluation runs."""
    return f"{root}/settings/{exp}/{stem}.yaml"


def examples(result_path: str, arrays: bool = False) -> str:
    """The per-example file beside a result JSON: a table (``anomaly.json`` ->
    ``anomaly.examples.parquet``) or, for FID, arrays (``fid.json`` -> ``fid.features.npz``)."""
    stem = result_path.removesuffix(".json")
    return f"{stem}.features.npz" if arrays else f"{stem}.examples.parquet"


def data_manifest(key: str, root: str = ROOT) -> str:
    """What preparing the images ``key`` (lsnf.config.DataConfig.key) checked."""
    return f"{root}/data/{key}.json"


def extractor(key: str, root: str = ROOT) -> str:
    """The domain FID feature extractor trained on the images ``key``."""
    return f"{root}/extractors/{key}.pt"


def fid_reference(key: str, split: str, extractor: str, root: str = ROOT) -> str:
    """FID reference statistics of a split of the images ``key``."""
    return f"{root}/fid/{key}/{split}-{extractor}.npz"


FID_ROWS = {"floor": "test", "noise": "noise"}  # model-free FID row -> the images it scores


def fid_floor(key: str, extractor: str, row: str = "floor", root: str = ROOT) -> str:
    """A model-free FID row of the images ``key``: the floor (real test images against the
    reference) or the noise row (uniform noise images), :data:`FID_ROWS`."""
    return f"{root}/fid/{key}/{row}-{extractor}.json"


def tables_dir(root: str = ROOT) -> str:
    return f"{root}/tables"


def table_file(name: str, ext: str) -> str:
    """A table's file name (``measurements.csv`` too: every result with its provenance)."""
    return f"{name}.{ext}"


def table(name: str, ext: str, root: str = ROOT) -> str:
    return f"{tables_dir(root)}/{table_file(name, ext)}"


FOREST = "comparison_forest.png"  # the comparison's forest plot, beside its table


def forest_figure(root: str = ROOT) -> str:
    """The forest plot of the comparison table (lsnf.analysis.forest)."""
    return f"{tables_dir(root)}/{FOREST}"


def course_figure(exp: str, root: str = ROOT) -> str:
    """The course of an experiment's comparisons over training
    (lsnf.analysis.forest.plot_course)."""
    return f"{tables_dir(root)}/course-{exp}.png"


def curves_figure(exp: str, root: str = ROOT) -> str:
    return f"{root}/figures/{exp}_curves.png"


def test_steps_figure(exp: str, root: str = ROOT) -> str:
    return f"{root}/figures/{exp}_test_steps.png"


def log(rule: str, job: str, root: str = ROOT) -> str:
    """A job's log; ``job`` names it within its rule (``{exp}/{run}``, ``{data}``, ...)."""
    return f"{root}/logs/{rule}/{job}.log"


def benchmark(rule: str, job: str, root: str = ROOT) -> str:
    """A job's wall time and memory, written by Snakemake (read by the cost table)."""
    return f"{root}/benchmarks/{rule}/{job}.tsv"


def tracked_evaluations(root: str = ROOT) -> str:
    """The workflow's record that its evaluations are logged in MLflow (the runs it logged)."""
    return f"{root}/logs/mlflow-evaluations.txt"


def tracking_failures(root: str = ROOT) -> str:
    """Jobs whose MLflow logging failed append a line here; a workflow's end names them."""
    return f"{root}/logs/mlflow-failures.jsonl"
