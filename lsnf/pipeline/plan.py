"""The experiment plan behind the Snakemake DAG: pure functions from workflow config to jobs.

The Snakefile stays thin: it asks this module which models exist (one per experiment, prior,
seed and — for anomaly detection — held-out digit, or — for recovery — training mask), which
evaluations each gets, and which run-config overrides a model's training job passes to
``lsnf train``.

Run ids (``{prior}-seed{seed}``, ...) are :mod:`lsnf.run_ids`'.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from lsnf import layout
from lsnf.config import (
    DOMAIN_CNN,
    MASK_TAG_PATTERN,
    TWO_STAGE,
    DataConfig,
    EvaluationSettings,
    MaskSpec,
    RunConfig,
    load_config,
    yaml_scalar,
)
from lsnf.core.architectures import GENERATED_SIZES
from lsnf.evaluation.registry import for_task, parse_stem, settings_of
from lsnf.run_ids import RUN_PATTERN, Run

__all__ = [
    "MASK_TAG_PATTERN",
    "RUN_PATTERN",
    "Run",
    "data_key",
    "data_overrides",
    "enabled_experiments",
    "evaluation_settings",
    "evaluation_settings_text",
    "evaluation_targets",
    "experiment_data",
    "experiment_for_data",
    "extractor_weights",
    "fid_reference",
    "mask_specs",
    "option",
    "resolved_data_config",
    "resolved_run_config",
    "run_config_file",
    "run_config_text",
    "runs",
    "scaled_resource",
    "train_overrides",
    "two_stage_source",
]


def option(flag: str, value: Any) -> list[str]:
    """The argument list of one optional CLI flag of a job's command: ``[flag, value]``, or none
    when ``value`` is None or empty. Job commands take values only as lists like this one, each
    item quoted by Snakemake's ``:q`` (workflow/rules/common.smk): no config value reaches a
    shell unquoted."""
    if value is None or value == "" or value == []:
        return []
    return [flag, str(value)]


def enabled_experiments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Experiments in the DAG (``enabled: false`` keeps one declared but out of it)."""
    return {n: e for n, e in config["experiments"].items() if e["enabled"]}


def runs(exp: dict[str, Any]) -> list[Run]:
    """Every model of an experiment (a schema-validated experiment, defaults filled in)."""
    priors, seeds = exp["priors"], exp["seeds"]
    if exp["task"] == "anomaly":  # a folder's anomalies are its own: no digit (held_out_digits: [])
        digits = exp["held_out_digits"] or [None]
        return [Run(p, s, d) for p in priors for d in digits for s in seeds]
    if exp["task"] == "recovery":
        tags = [m.tag for m in mask_specs(exp)]
        return [Run(p, s, mask=t) for p in priors for t in tags for s in seeds]
    return [Run(p, s) for p in priors for s in seeds]


def mask_specs(exp: dict[str, Any]) -> list[MaskSpec]:
    """An experiment's masks (inpainting: test masks; recovery: training corruptions)."""
    return [MaskSpec(**m) for m in exp["masks"]]


def _mask_named(exp_name: str, exp: dict[str, Any], tag: str) -> MaskSpec:
    """The mask of an experiment's ``masks:`` whose tag (the name in run ids and file names) is
    ``tag``: looked up, not parsed, so every parameter is the experiment's."""
    masks = {m.tag: m for m in mask_specs(exp)}
    if tag not in masks:
        raise ValueError(f"experiment {exp_name} has no mask {tag!r} (it has {sorted(masks)})")
    return masks[tag]


def _run_named(exp_name: str, exp: dict[str, Any], run_id: str) -> Run:
    """The planned :class:`Run` of id ``run_id`` (a job's ``{run}`` wildcard), looked up among
    :func:`runs`, never parsed from the string."""
    planned = {r.id: r for r in runs(exp)}
    if run_id not in planned:
        raise ValueError(f"experiments.{exp_name} plans no run {run_id!r}: {sorted(planned)}")
    return planned[run_id]


def train_overrides(config: dict[str, Any], exp_name: str, run_id: str) -> list[str]:
    """``--set`` overrides for one model: the experiment's ``set``, its ``prior_set`` for this
    prior, then prior kind, seed, held-out digit, device and data root. A 2s-ABP run
    (docs/method.md §6.6) has its ABP run's settings, with the flow fitted in two stages."""
    exp = config["experiments"][exp_name]
    run = _run_named(exp_name, exp, run_id)
    snapshots = config.get("snapshots")  # the course (§9.1); the schema's default, 8
    sets = [] if snapshots is None else [f"train.snapshots={snapshots}"]  # `set:` may override
    sets += [f"{k}={yaml_scalar(v)}" for k, v in exp["set"].items()]
    two_stage = run.prior == TWO_STAGE  # ABP's settings, then a flow fitted after (§6.6)
    per_prior = exp["prior_set"].get("gaussian" if two_stage else run.prior, {})
    sets += [f"{k}={yaml_scalar(v)}" for k, v in per_prior.items()]
    sets += ["prior.kind=flow", "prior.fit=two_stage"] if two_stage else [f"prior.kind={run.prior}"]
    sets += [f"seed={run.seed}", f"device={config['device']}", "train.progress=false"]
    sets += _root_set(config, exp)
    if run.digit is not None:
        sets.append(f"data.held_out_digit={run.digit}")
    if run.mask is not None:  # learning from incomplete data: the corruption of this run
        corruption = _mask_named(exp_name, exp, run.mask).model_dump()
        sets += [f"data.corruption.{k}={yaml_scalar(v)}" for k, v in corruption.items()]
    return sets


def two_stage_source(config: dict[str, Any], exp_name: str, run_id: str) -> str:
    """The id of the ABP run whose generator and latents the 2s-ABP run ``run_id`` starts from
    (docs/method.md §6.6): the same run with a Gaussian prior."""
    run = _run_named(exp_name, config["experiments"][exp_name], run_id)
    return replace(run, prior="gaussian").id


def run_config_file(config: dict[str, Any], exp_name: str) -> str:
    """An experiment's ``run_config``: the path as given (absolute, or relative to the working
    directory) where that file exists, else the same relative path among lsnf's shipped files
    (:func:`lsnf.shipped.root`: its checkout's or its wheel's ``config/models/``), so the
    workflow runs as a Snakemake module from any directory; neither is an error naming both."""
    from lsnf import shipped

    given = Path(config["experiments"][exp_name]["run_config"])
    if given.is_file():
        return str(given)
    if not given.is_absolute() and (found := shipped.root() / given).is_file():
        return str(found)
    raise FileNotFoundError(
        f"experiments.{exp_name}.run_config: {given} does not exist in the working directory"
        + ("" if given.is_absolute() else f" nor among lsnf's shipped files ({shipped.root()})")
    )


def resolved_run_config(config: dict[str, Any], exp_name: str, run_id: str) -> RunConfig:
    """The validated run config of one model: the experiment's run config file with
    :func:`train_overrides` applied (what ``lsnf train`` will use)."""
    path = run_config_file(config, exp_name)
    return load_config(path, train_overrides(config, exp_name, run_id))


def run_config_text(config: dict[str, Any], exp_name: str, run_id: str) -> str:
    """One model's resolved run config as YAML (what its training job reads; rule run_config
    writes it, and reruns when it changes)."""
    cfg = resolved_run_config(config, exp_name, run_id)
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def experiment_data(config: dict[str, Any], exp_name: str) -> DataConfig:
    """The validated data config of an experiment: its run config file with the ``data.*`` keys
    of its ``set:`` and the workflow's data root (before any run's digit or corruption)."""
    return load_config(run_config_file(config, exp_name), _data_sets(config, exp_name)).data


def _data_sets(config: dict[str, Any], exp_name: str) -> list[str]:
    exp = config["experiments"][exp_name]
    data = sorted((k, v) for k, v in exp["set"].items() if k.startswith("data."))
    sets = [f"{k}={yaml_scalar(v)}" for k, v in data]  # sorted: reordering keys reruns nothing
    return [*sets, *_root_set(config, exp)]


def _root_set(config: dict[str, Any], exp: dict[str, Any]) -> list[str]:
    """The workflow's ``data_root``, unless the experiment names its own ``data.root`` (a
    folder of your own images, data.source: folder)."""
    return [] if "data.root" in exp["set"] else [f"data.root={config['data_root']}"]


# Run-config keys that train_overrides sets for every model (after the experiment's own `set:`
# and `prior_set:`, so it would win silently), each with the workflow key that decides it.
WORKFLOW_SET_KEYS = {
    "prior.kind": "priors",
    "prior.fit": "priors (abp2s fits the flow in two stages)",
    "seed": "seeds",
    "device": "the workflow's device",
    "train.progress": "nothing: the workflow turns progress bars off in jobs",
}
TASK_SET_KEYS = {  # the same, for the tasks whose runs set them
    "anomaly": {"data.held_out_digit": "held_out_digits"},
    "recovery": {"data.corruption": "masks"},
}


def _check_sets(name: str, exp: dict[str, Any]) -> None:
    """Refuse a `set:` or `prior_set:` key that the workflow sets itself (it would be ignored)."""
    owned = {**WORKFLOW_SET_KEYS, **TASK_SET_KEYS.get(exp["task"], {})}
    blocks = {"set": exp["set"], **{f"prior_set.{p}": s for p, s in exp["prior_set"].items()}}
    for block, sets in blocks.items():
        for key in sets:
            for own, decided_by in owned.items():
                if key == own or key.startswith(f"{own}."):
                    raise ValueError(
                        f"experiments.{name}.{block}: {key} is set by the workflow for each model "
                        f"and would be ignored; remove it (decided by: {decided_by})"
                    )


def _check_shapes(config: dict[str, Any], name: str) -> None:
    """Refuse a model whose generator cannot make its images, or whose flow cannot split its
    latent in halves (docs/method.md §2.3), from its resolved run config: otherwise only
    ``lsnf train`` finds it, after the data preparation, extractor and FID statistics."""
    exp = config["experiments"][name]
    for prior in exp["priors"]:
        run = next(r for r in runs(exp) if r.prior == prior)
        cfg, m = (c := resolved_run_config(config, name, run.id)), c.model
        where = f"experiments.{name}, {prior} ({exp['run_config']} with the experiment's set:)"
        if m.generator not in GENERATED_SIZES:
            raise ValueError(
                f"{where}: model.generator {m.generator!r} is not a generator; choose one of "
                f"{sorted(GENERATED_SIZES)}"
            )
        size = GENERATED_SIZES[m.generator]
        if size is not None and size != m.image_size:
            fits = sorted(g for g, s in GENERATED_SIZES.items() if s in (m.image_size, None))
            raise ValueError(
                f"{where}: generator {m.generator!r} makes {size}x{size} images, but "
                f"model.image_size is {m.image_size}: set model.image_size: {size}, or a "
                f"generator for {m.image_size}x{m.image_size} images ({', '.join(fits)})"
            )
        if cfg.data.source == "folder":
            for key in ("image_size", "channels"):
                found, model = getattr(cfg.data.folder, key), getattr(m, key)
                if found is not None and found != model:
                    raise ValueError(
                        f"{where}: data.folder.{key} is {found}, but model.{key} is {model}: "
                        f"set model.{key}: {found} (and a generator that makes such images)"
                    )
        if cfg.prior.kind == "flow" and m.latent_dim % 2:
            raise ValueError(
                f"{where}: the flow prior needs an even model.latent_dim (its coupling splits "
                f"z in halves), not {m.latent_dim}: set model.latent_dim: {m.latent_dim + 1}"
            )


def check_experiment(config: dict[str, Any], name: str) -> None:
    """What the schema cannot say of an experiment, refused before any job (naming the key)."""
    exp = config["experiments"][name]
    _check_sets(name, exp)
    _check_shapes(config, name)
    if TWO_STAGE in exp["priors"] and exp["task"] == "recovery":  # §6.6
        raise ValueError(
            f"experiments.{name}.priors: {TWO_STAGE} needs complete training images; a "
            f"recovery experiment learns from corrupted ones"
        )
    if exp["task"] == "anomaly":
        folder = experiment_data(config, name).source == "folder"
        if folder and exp["held_out_digits"]:
            raise ValueError(
                f"experiments.{name}.held_out_digits: a folder's anomalies are its own anomalous "
                f"images, not a held-out digit: set held_out_digits: [] (docs/protocols.md §10)"
            )
        if not folder and not exp["held_out_digits"]:
            raise ValueError(
                f"experiments.{name}.held_out_digits: empty; name the digits to hold out"
            )


def check_versus(config: dict[str, Any]) -> None:
    """Each ``versus`` pair names two enabled experiments of one task, refused before any job
    (the versus table, docs/method.md §9)."""
    enabled = enabled_experiments(config)
    for pair in config["versus"]:
        bad = [e for e in pair if e not in enabled]
        if bad or enabled[pair[0]]["task"] != enabled[pair[1]]["task"]:
            raise ValueError(
                f"versus: {pair} must name two enabled experiments of one task "
                f"(unknown or disabled: {bad})"
            )


def data_key(config: dict[str, Any], exp_name: str) -> str:
    """Identity of an experiment's images (:attr:`lsnf.config.DataConfig.key`): experiments whose
    splits hold the same images share it, and with it their data-level jobs (preparation, FID
    extractor, reference and floor); any other experiment gets its own."""
    return experiment_data(config, exp_name).key


def experiment_for_data(config: dict[str, Any], key: str) -> str:
    """An enabled experiment whose images are ``key`` (all such experiments hold the same)."""
    for name in enabled_experiments(config):
        if data_key(config, name) == key:
            return name
    raise ValueError(f"no enabled experiment uses dataset {key!r}")


def data_overrides(config: dict[str, Any], key: str) -> list[str]:
    """``--set`` overrides for a data-level job (preparation, extractor, FID reference and
    floor) on images ``key``, applied to the run config file of an experiment using them: every
    image of the splits, uncorrupted, whichever of those experiments it is."""
    sets = _data_sets(config, experiment_for_data(config, key))
    return [*sets, "data.limit=null", "data.corruption=null"]


def resolved_data_config(config: dict[str, Any], key: str) -> DataConfig:
    """The validated data config of a data-level job on images ``key``."""
    path = run_config_file(config, experiment_for_data(config, key))
    return load_config(path, data_overrides(config, key)).data


def evaluation_targets(config: dict[str, Any]) -> list[str]:
    """Every evaluation output of the DAG (paths under results/): each model gets the outputs
    of its task's evaluations (lsnf.evaluation.registry), one per mask for a per-mask evaluation."""
    out = []
    for name, exp in enabled_experiments(config).items():
        tags = [m.tag for m in mask_specs(exp)]
        files = [
            f.format(mask=tag)
            for ev in for_task(exp["task"])
            for f in ev.outputs()
            for tag in (tags if ev.per_mask else [""])
        ]
        for run in runs(exp):
            out += [layout.result(name, run.id, f) for f in files]
    return out


def fid_floors(config: dict[str, Any]) -> list[str]:
    """The model-free FID rows (layout.FID_ROWS) of each dataset an enabled generation
    experiment uses, for the configured extractor."""
    keys = sorted(
        {
            data_key(config, name)
            for name, exp in enabled_experiments(config).items()
            if exp["task"] == "generation"
        }
    )
    extractor = config["fid"]["extractor"]
    return [layout.fid_floor(key, extractor, row) for key in keys for row in layout.FID_ROWS]


def extractor_weights(config: dict[str, Any], key: str) -> str | None:
    """The FID feature extractor's weights for the images ``key``: the domain extractor the
    workflow trains on them, or the configured file (None: torch-fidelity's cache)."""
    if config["fid"]["extractor"] == DOMAIN_CNN:
        return layout.extractor(key)
    return config["fid"]["weights"] or None


def validation_extractor(config: dict[str, Any], exp_name: str) -> str | None:
    """The extractor a model's validation KID uses (docs/method.md §6.5): a generation
    experiment's domain extractor, when the workflow trains one; else None (MSE curves only)."""
    exp = config["experiments"][exp_name]
    if exp["task"] != "generation" or config["fid"]["extractor"] != DOMAIN_CNN:
        return None
    return layout.extractor(data_key(config, exp_name))


def fid_reference(config: dict[str, Any], key: str) -> str:
    """The FID reference statistics of the images ``key`` that models' FIDs use."""
    return layout.fid_reference(key, config["fid"]["reference_split"], config["fid"]["extractor"])


def evaluation_settings(config: dict[str, Any], exp_name: str, stem: str) -> EvaluationSettings:
    """The resolved settings of one evaluation (``stem``: its name, or ``{name}-{mask}``) of an
    experiment's models: the fields it takes (lsnf.evaluation.registry) from the experiment's
    ``evaluation:`` block, its test mask, and FID's reference and extractor."""
    ev, mask = parse_stem(stem)
    exp = config["experiments"][exp_name]
    raw: dict[str, Any] = {k: v for k, v in exp["evaluation"].items() if k in ev.settings}
    if "mask" in ev.settings:
        raw["mask"] = _mask_named(exp_name, exp, mask).model_dump(mode="json")
    if "fid" in ev.settings:
        key, fid = data_key(config, exp_name), config["fid"]
        raw["fid"] = {
            "extractor": fid["extractor"],
            "weights": extractor_weights(config, key),
            "stats": fid_reference(config, key),
            "n": fid["n_samples"],
            "download": fid["download"],
        }
    return settings_of(ev, raw, f"experiments.{exp_name}.evaluation ({ev.name})")


def evaluation_settings_text(config: dict[str, Any], exp_name: str, stem: str) -> str:
    """One evaluation's resolved settings as YAML (what ``lsnf eval --settings`` reads; rule
    eval_settings writes it, and reruns when it changes)."""
    ev, _ = parse_stem(stem)
    settings = evaluation_settings(config, exp_name, stem).model_dump(mode="json")
    taken = {k: settings[k] for k in ev.settings}
    return yaml.safe_dump(taken, sort_keys=False)


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


def gpu_resources(config: dict[str, Any], on_device: bool) -> dict[str, Any]:
    """The scheduler's GPU request of a job (the SLURM executor plugin's ``gpu`` and
    ``gpu_model`` resources, docs/running.md "On a SLURM cluster"): one GPU, of the configured
    model if any, for a job that runs its networks on the configured ``device`` when that is CUDA;
    nothing for a CPU run or for CPU-only work (``on_device=False``: the domain extractor's
    training, data preparation, tables). The one place a rule's GPU need is decided."""
    if not on_device or not str(config["device"]).startswith("cuda"):
        return {}
    model = config["resources"].get("gpu_model")
    return {"gpu": 1, **({"gpu_model": model} if model else {})}
