"""The registry of evaluations: one definition each (docs/method.md §7).

An :class:`Evaluation` says, once: its name (the ``lsnf eval`` subcommand, the result file, the
rule ``eval_<name>``, the ``evaluation`` field of its results), the experiment tasks that run it,
the function that computes it, the settings it takes (fields of
:class:`lsnf.config.EvaluationSettings`), its output files and its values, each with its
statistic (lsnf.metrics.stats: how it is recomputed and bootstrapped from the per-example file, and
whether higher is better), label and digits. The CLI, the plan, the workflow's rules, the
comparison, the replicates, the tables and the MLflow metric keys read it; modules named in
``$LSNF_EVALUATIONS`` add evaluations with :func:`register`. Like :mod:`lsnf.config`, it imports
no torch: the function is named, and imported only when it runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EVALUATIONS",
    "TASKS",
    "Evaluation",
    "Value",
    "for_task",
    "mlflow_metrics",
    "parse_stem",
    "register",
    "settings_of",
    "value_of",
]

TASKS = ("anomaly", "generation", "inpainting", "recovery")  # an experiment's `task`


@dataclass(frozen=True)
class Value:
    """One value of a result: the record's key ``column`` (also the measurements' column), its
    statistic (a key of :data:`lsnf.metrics.stats.STATISTICS`), its label and the digits it is shown
    with."""

    column: str
    statistic: str
    label: str
    digits: int

    @property
    def higher_is_better(self) -> bool:
        from lsnf.metrics.stats import STATISTICS

        return STATISTICS[self.statistic].higher_is_better


@dataclass(frozen=True)
class Evaluation:
    """One evaluation (module docstring). ``condition``: the measurements' column that names
    what a result is of (held-out digit, dataset, extractor, mask), and ``condition_text`` how
    the comparison table writes its value (``FID[domain_cnn]``, ``mask sp30``); ``per_mask``: one
    result per test mask of the experiment (``{mask}`` in its file names); ``mlflow_suffix``:
    the record's field, as a dotted path, whose value tells apart several results of one model in
    MLflow; ``curve``: the validation curve (lsnf.training.convergence.CURVES) whose convergence
    decides its verdicts (docs/method.md §6.5): the validation KID for sample quality, the
    reconstruction MSE for anything that infers latents."""

    name: str
    tasks: tuple[str, ...]
    compute: str  # "module:function", taking (TrainedModel, EvaluationSettings) -> Outcome
    settings: tuple[str, ...]  # the fields of lsnf.config.EvaluationSettings it takes
    help: str
    values: tuple[Value, ...] = ()
    condition: str = ""
    condition_text: str = "{}"
    result: bool = True  # writes a result JSON (and its per-example file)
    arrays: bool = False  # its per-example file holds arrays (.npz), not rows (.parquet)
    grid: bool = False  # writes a PNG grid
    grid_title: str = "Grids"  # its grids' category in the workflow's report
    per_mask: bool = False
    mlflow_suffix: str | None = None
    curve: str = "valid_mse"

    @property
    def function(self) -> Callable[..., Any]:
        module, _, name = self.compute.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def stem(self) -> str:
        """Its output files' name without extension (``{mask}`` for a per-mask evaluation)."""
        return f"{self.name}-{{mask}}" if self.per_mask else self.name

    def outputs(self) -> list[str]:
        """Its files in a model's evaluation directory (patterns with ``{mask}``)."""
        return [f"{self.stem}.json"] * self.result + [f"{self.stem}.png"] * self.grid


_INFERENCE = ("test_steps", "step_size", "n_test", "batch_size", "seed", "noise", "batchnorm")
_HOLE = (
    Value("value", "mse", "hole MSE", 4),
    Value("psnr", "psnr", "hole PSNR", 2),
    Value("ssim", "ssim", "hole SSIM", 3),
)

EVALUATIONS: dict[str, Evaluation] = {
    e.name: e
    for e in (
        Evaluation(
            "anomaly",
            ("anomaly",),
            "lsnf.evaluation.evaluate:anomaly",
            (*_INFERENCE, "split"),
            "anomaly AUPRC and AUROC (anomaly protocol test split)",
            (Value("value", "auprc", "AUPRC", 3), Value("auroc", "auroc", "AUROC", 3)),
            condition="anomalies",
        ),
        Evaluation(
            "reconstruction",
            ("generation",),
            "lsnf.evaluation.evaluate:reconstruction",
            (*_INFERENCE, "split"),
            "reconstruction MSE per pixel ([-1, 1]) after inference, and a grid",
            (Value("value", "mse", "MSE", 4),),
            condition="dataset",
            grid=True,
            grid_title="Reconstructions",
            mlflow_suffix="data.split",
        ),
        Evaluation(
            "fid",
            ("generation",),
            "lsnf.evaluation.evaluate:fid",
            ("batch_size", "seed", "bootstrap", "fid"),
            "FID, KID, precision and recall of model samples against the reference",
            (
                Value("value", "fid", "FID", 2),
                Value("kid", "kid", "KID", 4),
                Value("sample_precision", "precision", "precision", 3),
                Value("sample_recall", "recall", "recall", 3),
            ),
            condition="extractor",
            condition_text="FID[{}]",
            arrays=True,
            mlflow_suffix="feature_extractor.name",
            curve="valid_kid",
        ),
        Evaluation(
            "samples",
            ("anomaly", "generation"),
            "lsnf.evaluation.evaluate:samples",
            ("grid_samples", "seed"),
            "PNG grid of ancestral samples",
            result=False,
            grid=True,
            grid_title="Samples",
        ),
        Evaluation(
            "inpainting",
            ("inpainting",),
            "lsnf.evaluation.evaluate:inpainting",
            (*_INFERENCE, "completions", "split", "mask"),
            "supervised inpainting: hole MSE/PSNR/SSIM (test split), and a grid",
            _HOLE,
            condition="mask",
            condition_text="mask {}",
            grid=True,
            grid_title="Inpainting",
            per_mask=True,
            mlflow_suffix="identity.mask",
        ),
        Evaluation(
            "recovery",
            ("recovery",),
            "lsnf.evaluation.evaluate:recovery",
            _INFERENCE,
            "recovery error on the hidden pixels of the training images, and a grid",
            _HOLE,
            condition="mask",
            condition_text="mask {}",
            grid=True,
            grid_title="Recovery",
        ),
    )
}


def register(evaluation: Evaluation) -> None:
    """Add an evaluation (from a module that ``$LSNF_EVALUATIONS`` names, comma-separated,
    imported with this one): the CLI, the workflow, the tables and MLflow then have it."""
    if evaluation.name in EVALUATIONS:
        raise ValueError(f"an evaluation named {evaluation.name!r} is registered already")
    if set(evaluation.tasks) - set(TASKS):
        raise ValueError(f"{evaluation.name}: tasks must be among {TASKS}")
    EVALUATIONS[evaluation.name] = evaluation


def settings_of(evaluation: Evaluation, raw: dict[str, Any], origin: str) -> Any:
    """The :class:`lsnf.config.EvaluationSettings` of ``raw`` (a settings file's mapping), which
    may hold only the fields ``evaluation`` takes; the rest keep their defaults."""
    from lsnf.config import ConfigError, EvaluationSettings, validated

    foreign = sorted(set(raw) - set(evaluation.settings))
    if foreign:
        raise ConfigError(
            f"invalid settings ({origin}): {evaluation.name} does not take {', '.join(foreign)} "
            f"(it takes {', '.join(evaluation.settings)})"
        )
    return validated(EvaluationSettings, raw, origin)


def for_task(task: str) -> list[Evaluation]:
    """The evaluations every model of an experiment of ``task`` gets, in registry order."""
    return [e for e in EVALUATIONS.values() if task in e.tasks]


def parse_stem(stem: str) -> tuple[Evaluation, str | None]:
    """The evaluation, and the mask tag of a per-mask one, of an output name's stem
    (``anomaly``, ``inpainting-center``)."""
    for ev in EVALUATIONS.values():
        if ev.per_mask and stem.startswith(f"{ev.name}-"):
            return ev, stem[len(ev.name) + 1 :]
        if not ev.per_mask and stem == ev.name:
            return ev, None
    raise ValueError(f"{stem!r} names no evaluation of lsnf.evaluation.registry")


def value_of(evaluation: str, column: str) -> Value:
    """The :class:`Value` in ``column`` of a result of ``evaluation``."""
    (value,) = [v for v in EVALUATIONS[evaluation].values if v.column == column]
    return value


def _field(record: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        record = record[key]
    return record


def mlflow_metrics(record: dict[str, Any]) -> dict[str, float]:
    """A result's MLflow metrics: ``{evaluation}_{statistic}`` (the statistic alone when it is
    the evaluation's name, as FID's), then ``.{suffix}`` where one model has several results of
    that evaluation (``reconstruction_mse.test``, ``fid.lsnf-domain-cnn``,
    ``inpainting_psnr.center``)."""
    ev = EVALUATIONS[record["evaluation"]]
    suffix = f".{_field(record, ev.mlflow_suffix)}" if ev.mlflow_suffix else ""
    out = {}
    for v in ev.values:
        key = v.statistic if v.statistic == ev.name else f"{ev.name}_{v.statistic}"
        out[key + suffix] = float(record[v.column])
    return out


def _load_plugins() -> None:
    """Import the modules ``$LSNF_EVALUATIONS`` names: each registers its evaluations."""
    import os

    for module in filter(None, os.environ.get("LSNF_EVALUATIONS", "").split(",")):
        importlib.import_module(module.strip())


_load_plugins()
