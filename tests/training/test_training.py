"""Learning (docs/method.md §6): each prior learns, resume is exact, non-finite values stop
cleanly."""

from __future__ import annotations

import json

import pytest
import torch
from workflow_helpers import MNIST_TINY

from lsnf.core.inference import InferenceSettings, reconstruction_errors
from lsnf.core.model import build_model
from lsnf.data.splits import load_split
from lsnf.layout import CHECKPOINT as CHECKPOINT_NAME
from lsnf.layout import MODEL as MODEL_NAME
from lsnf.training.checkpoint import load_checkpoint
from lsnf.training.train import NonFiniteError, Trainer, fit


@pytest.mark.parametrize("prior", ["flow", "gaussian", "ebm"])
def test_short_training_lowers_reconstruction_error_on_real_mnist(make_config, tmp_path, prior):
    cfg = make_config(**{**MNIST_TINY, "prior": {**MNIST_TINY["prior"], "kind": prior}})
    test = load_split(cfg.data, "test")
    settings = InferenceSettings(steps=40, step_size=0.1, batch_size=100, seed=0)
    before = reconstruction_errors(build_model(cfg), test.images[:200], settings)[40].mean()
    model = fit(cfg, tmp_path)
    after = reconstruction_errors(model, test.images[:200], settings)[40].mean()
    assert after < 0.8 * before, (before, after)
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]  # validation point 0, then epochs
    assert history[-1]["loss_g"] < history[1]["loss_g"]


def test_flow_prior_likelihood_rises_during_training(make_config, tmp_path):
    cfg = make_config(**MNIST_TINY)
    fit(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss_p"] for r in rows if r["epoch"] > 0]  # after validation point 0
    assert losses[-1] < losses[0]  # -log p_a(z_post) falls


@pytest.mark.parametrize("prior", ["flow", "ebm"])
def test_resume_after_interruption_equals_uninterrupted_run(make_config, tmp_path, prior):
    cfg = make_config(prior={"kind": prior}, train={"epochs": 3})
    full = fit(cfg, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_mid_epoch_2(epoch: int, iteration: int) -> None:
        if epoch == 2 and iteration == 3:
            raise Killed

    with pytest.raises(Killed):
        fit(cfg, tmp_path / "resumed", on_iteration=kill_mid_epoch_2)
    assert not (tmp_path / "resumed" / MODEL_NAME).exists()  # incomplete run has no model.pt
    assert load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)["epoch"] == 1
    resumed = fit(cfg, tmp_path / "resumed")
    for (name, a), (_, b) in zip(
        full.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    hist = load_checkpoint(tmp_path / "resumed" / MODEL_NAME)["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]


def test_a_checkpoint_from_another_device_type_resumes_with_a_reseeded_noise_stream(
    make_config, tmp_path, capsys
):
    """A CUDA generator's state (16 bytes) cannot be set on a CPU generator (5,056 bytes): the
    run continues, its noise generator re-seeded from (seed, epoch), says so, and records it in
    metrics.jsonl; two such resumes give the same model (docs/method.md §6.3)."""
    from lsnf.training.train import reseeded_noise_seed

    cfg = make_config(train={"epochs": 2})
    models = []
    for name in ("a", "b"):
        run = tmp_path / name
        fit(make_config(train={"epochs": 1}), run)
        ckpt = run / CHECKPOINT_NAME
        state = load_checkpoint(ckpt)
        assert state["rng_device"] == "cpu" and state["rng"].numel() > 16
        # as a checkpoint written on CUDA: Philox seed and offset, 16 bytes
        state["rng"] = torch.zeros(16, dtype=torch.uint8)
        state["rng_device"] = "cuda"
        torch.save(state, ckpt)
        capsys.readouterr()
        models.append(fit(cfg, run))
        err = capsys.readouterr().err
        assert "Langevin noise generator is cuda" in err and "(seed, epoch) = (0, 1)" in err
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r.get("rng_reseeded") for r in rows if r["epoch"] > 0] == [None, 1.0]
    a, b = (m.state_dict() for m in models)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert reseeded_noise_seed(0, 1) != reseeded_noise_seed(0, 2) != reseeded_noise_seed(1, 1)
    assert all(0 <= reseeded_noise_seed(s, e) < 2**63 for s in (0, 2**40) for e in (0, 99))


def test_resume_with_another_config_is_refused(make_config, tmp_path):
    fit(make_config(train={"epochs": 1}), tmp_path)
    with pytest.raises(ValueError, match="model.latent_dim"):
        Trainer(make_config(model={"latent_dim": 6}, train={"epochs": 2}), tmp_path)
    # more epochs on the same config continues the run from epoch 1
    after_one = load_checkpoint(tmp_path / MODEL_NAME)["model"]
    model = fit(make_config(train={"epochs": 2}), tmp_path)
    state = load_checkpoint(tmp_path / MODEL_NAME)
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [0, 1, 2]
    assert any(not torch.equal(after_one[k], v) for k, v in model.state_dict().items())


def test_non_finite_loss_stops_with_epoch_and_iteration_and_keeps_checkpoint(make_config, tmp_path):
    cfg = make_config(train={"epochs": 3})
    trainer = Trainer(cfg, tmp_path)

    def poison(epoch: int, iteration: int) -> None:
        if epoch == 2 and iteration == 2:
            with torch.no_grad():
                next(trainer.model.generator.parameters()).fill_(float("nan"))

    trainer.on_iteration = poison
    with pytest.raises(NonFiniteError, match=r"epoch 2, iteration 2") as err:
        trainer.run()
    assert "checkpoint" in str(err.value)
    good = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert good["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    assert not (tmp_path / MODEL_NAME).exists()


def test_a_recorded_failure_is_a_model_pt_without_parameters_that_names_epoch_and_iteration(
    make_config, tmp_path
):
    """docs/method.md §6.7: with record_failure, a non-finite loss at epoch 2, iteration 2
    writes model.pt as the failure's record (learning iteration counted from the start), keeps
    the epochs done in metrics.jsonl and the last good checkpoint, and every loader refuses it
    by name while failed_model() reads it; a 2s-ABP fit from it fails in turn."""
    from lsnf.training.checkpoint import failed_model, load_model
    from lsnf.training.failure import FailedModelError
    from lsnf.training.two_stage import fit_two_stage

    cfg = make_config(prior={"kind": "gaussian"}, train={"epochs": 3})
    trainer = Trainer(cfg, tmp_path)
    per_epoch = len(trainer.data) // cfg.train.batch_size

    def poison(epoch: int, iteration: int) -> None:
        if epoch == 2 and iteration == 2:
            with torch.no_grad():
                next(trainer.model.generator.parameters()).fill_(float("nan"))

    trainer.on_iteration = poison
    assert trainer.run(record_failure=True) is None
    failed = failed_model(tmp_path / MODEL_NAME)
    assert failed is not None
    assert failed.failure.reason == "non-finite generator loss"
    assert (failed.failure.epoch, failed.failure.iteration) == (2, per_epoch + 2)
    assert failed.training["epochs"] == 1 and failed.data["dataset"] == trainer.data.meta["dataset"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1
    with pytest.raises(FailedModelError, match=r"failed to train \(non-finite generator loss at "
                       rf"epoch 2, iteration {per_epoch + 2}\)"):  # fmt: skip
        load_model(tmp_path / MODEL_NAME)
    two = make_config(prior={"kind": "flow", "fit": "two_stage"}, train={"epochs": 3})
    assert fit_two_stage(two, tmp_path / MODEL_NAME, tmp_path / "2s", record_failure=True) is None
    second = failed_model(tmp_path / "2s" / MODEL_NAME)
    assert second is not None and second.failure.epoch is None
    assert second.failure.text() == f"its ABP model failed to train ({failed.failure.text()})"


def test_truncated_checkpoint_names_the_file(make_config, tmp_path):
    fit(make_config(train={"epochs": 1}), tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:100])
    from lsnf.training.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=str(path)):
        Trainer(make_config(train={"epochs": 2}), tmp_path)


@pytest.mark.parametrize(
    "name, generator, size",
    [("svhn", "svhn", 32), ("cifar10", "cifar10", 32), ("celeba64", "celeba64", 64)],
)
def test_paper_shapes_train_through_the_dataset_factory(
    make_config, tmp_path, name, generator, size
):
    """Offline stand-in for SVHN / CIFAR-10 / CelebA-64: synthetic images of the dataset's
    shape through the same factory, trainer and generator architecture."""
    cfg = make_config(
        data={"name": name, "synthetic": {"channels": None, "image_size": None, "n_train": 32}},
        model={
            "generator": generator,
            "latent_dim": 4,
            "ngf": 2,
            "channels": 3,
            "image_size": size,
        },
        train={"epochs": 1, "batch_size": 16},
        inference={"steps": 2},
    )
    fit(cfg, tmp_path)
    state = load_checkpoint(tmp_path / MODEL_NAME)
    assert state["data"]["dataset"] == f"synthetic-{name}" and state["epoch"] == 1


def test_identical_runs_write_identical_model_bytes_and_keep_timings_aside(make_config, tmp_path):
    """Wall-clock figures live in metrics.jsonl, not in the checkpoint: two identical runs give
    byte-identical model.pt files (so results of identical runs carry one checkpoint SHA-256)."""
    from lsnf.io import sha256

    cfg = make_config(train={"epochs": 2})
    fit(cfg, tmp_path / "a")
    fit(cfg, tmp_path / "b")
    assert sha256(tmp_path / "a" / MODEL_NAME) == sha256(tmp_path / "b" / MODEL_NAME)
    history = load_checkpoint(tmp_path / "a" / MODEL_NAME)["history"]
    assert all("seconds" not in h and "images_per_s" not in h for h in history)
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["seconds"] > 0 and r["images_per_s"] > 0 for r in rows if r["epoch"] > 0)


def test_resumed_run_keeps_the_timings_of_earlier_epochs(make_config, tmp_path):
    fit(make_config(train={"epochs": 1}), tmp_path)
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[1])
    fit(make_config(train={"epochs": 2}), tmp_path)  # resumes after epoch 1
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # validation point 0, then epochs
    assert rows[1]["seconds"] == first["seconds"] and rows[2]["seconds"] > 0


def test_batchnorm_running_statistics_come_from_the_learning_step_only(make_config):
    """docs/method.md §6.4: after one learning iteration the running statistics are exactly one
    momentum update from the forward pass at the final z^K (none from the K Langevin passes)."""
    import copy

    from lsnf.training.train import learning_iteration

    cfg = make_config(
        model={"generator": "mnist", "latent_dim": 4, "ngf": 4, "channels": 1, "image_size": 28},
        prior={"kind": "gaussian"},
    )
    model = build_model(cfg).train()
    before = copy.deepcopy(model)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    opt = torch.optim.Adam(model.generator.parameters(), lr=1e-3)
    out = learning_iteration(model, x, opt, None, 5, 0.1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before.generator(out["z"])  # one train-mode forward at z^K, the parameters before the step
    buffers = dict(model.generator.named_buffers())
    stats = [k for k in buffers if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 6
    for name, expected in before.generator.named_buffers():
        assert torch.equal(buffers[name], expected), name


def test_two_stage_fits_a_flow_to_abp_latents_and_keeps_abps_generator(make_config, tmp_path):
    """docs/method.md §6.6: 2s-ABP is ABP's generator with a flow fitted by MLE to ABP's inferred
    training latents; its config must be ABP's but for the prior; it is never trained jointly."""
    from lsnf.errors import UserError
    from lsnf.training.checkpoint import load_model
    from lsnf.training.two_stage import fit_two_stage, infer_latents

    tiny = {**MNIST_TINY, "train": {**MNIST_TINY["train"], "epochs": 2, "validation_n": 50}}
    fit(make_config(**{**tiny, "prior": {**tiny["prior"], "kind": "gaussian"}}), tmp_path / "abp")
    two = make_config(**{**tiny, "prior": {**tiny["prior"], "kind": "flow", "fit": "two_stage"}})
    with pytest.raises(UserError, match="fit-two-stage"):
        Trainer(two, tmp_path / "joint")
    other = two.model_copy(update={"model": two.model.model_copy(update={"ngf": 4})})
    with pytest.raises(UserError, match="differs from the config"):
        fit_two_stage(other, tmp_path / "abp" / MODEL_NAME, tmp_path / "bad")
    fit_two_stage(two, tmp_path / "abp" / MODEL_NAME, tmp_path / "2s")

    abp, two_stage = (load_model(tmp_path / d / MODEL_NAME) for d in ("abp", "2s"))
    assert two_stage.config.model_kind == "abp2s" and abp.config.model_kind == "gaussian"
    gen = lambda m: {k: v for k, v in m.model.state_dict().items() if k.startswith("generator.")}
    assert all(torch.equal(v, gen(two_stage)[k]) for k, v in gen(abp).items())
    # the fitted flow gives ABP's latents a higher likelihood than the flow it started from
    z = infer_latents(
        abp.model, load_split(two.data, "valid").images, two, torch.Generator().manual_seed(1)
    )
    torch.manual_seed(two.seed)
    untrained = build_model(two).prior
    with torch.no_grad():
        gain = two_stage.model.prior.log_prob(z).mean() - untrained.log_prob(z).mean()
    assert gain > 1.0, gain
    record = load_checkpoint(tmp_path / "2s" / MODEL_NAME)
    assert record["two_stage"]["latents"]["train"] == len(load_split(two.data, "train"))
    assert "flow fit" in two_stage.training["convergence"]["detail"]


def test_validation_needs_a_validation_split_and_can_be_switched_off(make_config, tmp_path):
    """docs/method.md §6.5: without a validation split, validating is refused with the two ways
    out; with train.validate_every: 0 the model trains and records no convergence status."""
    from lsnf.errors import UserError
    from lsnf.training.checkpoint import load_model

    no_split = make_config(data={"validation_fraction": 0})
    with pytest.raises(UserError, match="validation_fraction.*validate_every: 0"):
        Trainer(no_split, tmp_path / "a")
    fit(make_config(data={"validation_fraction": 0}, train={"validate_every": 0}), tmp_path / "b")
    trained = load_model(tmp_path / "b" / MODEL_NAME)
    assert trained.training["convergence"] is None and trained.training["epochs"] == 2


def test_best_validation_selects_the_epoch_with_the_lowest_validation_score(make_config, tmp_path):
    """train.select: best_validation: model.pt holds the parameters of the validation point with
    the lowest score (MSE without an extractor), and names it; the last epoch's stay in
    checkpoint.pt."""
    cfg = make_config(train={"epochs": 3, "select": "best_validation", "lr": 0.1})
    fit(cfg, tmp_path)
    state = load_checkpoint(tmp_path / MODEL_NAME)
    scores = {int(h["epoch"]): h["valid_mse"] for h in state["history"] if h["epoch"] > 0}
    best = min(scores, key=scores.get)
    assert state["selected"] == {"by": "best valid_mse", "epoch": best}
    last = load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"]
    same = all(torch.equal(v, last[k]) for k, v in state["model"].items())
    assert best == 2 and not same  # here epoch 3 scores worse than epoch 2
