"""Learning by short-run-Langevin maximum likelihood (docs/method.md §6), with checkpoint/resume.

One iteration on a mini-batch x (docs/method.md §6.1):
1. ``z^K``: K noisy Langevin steps on p(z|x) from ``z^0 ~ N(0, I)``;
2. generator: ``loss_G = (1/m) sum_i ||x_i - g(z_i^K)||^2``, one Adam step;
3. prior: its own ``learning_loss`` on the detached ``z^K`` (flow: exact MLE; ebm: contrastive
   with prior Langevin; gaussian: nothing), one Adam step.

Determinism: model init from ``seed``; the data order of epoch e from ``(seed, e)``; Langevin
noise from one ``torch.Generator`` whose state is checkpointed. Resuming from an epoch
checkpoint therefore ends with the same parameters as an uninterrupted run.

Validation (docs/method.md §6.5): before the first epoch and every ``train.validate_every``
epochs (and after the last), :class:`lsnf.training.validation.Validator` scores the model on the
validation split; the points go to ``metrics.jsonl`` (epoch 0 included) and the checkpoint,
and at the end :func:`lsnf.training.convergence.model_status` gives the model its convergence
status, stored in ``model.pt``. ``train.select: best_validation`` keeps the parameters of the best
validation point (``best.pt`` holds them while training runs).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lsnf import layout
from lsnf.config import RunConfig
from lsnf.core.langevin import masked_sq_error
from lsnf.core.model import (
    LatentModel,
    build_model,
    compile_seconds,
    infer_posterior,
)
from lsnf.core.pixels import to_model_scale
from lsnf.data.splits import ImageSplit, corruption_masks, erase_hidden, load_split
from lsnf.errors import UserError
from lsnf.hardware import setup_device
from lsnf.training.checkpoint import load_checkpoint, save_checkpoint
from lsnf.training.failure import Failure, TrainingFailed
from lsnf.training.run_dir import RunDir, without_timings

__all__ = [
    "NonFiniteError",
    "Trainer",
    "check_data_shape",
    "epoch_order",
    "fit",
    "learning_iteration",
    "snapshot_epochs",
]


class NonFiniteError(TrainingFailed):
    """Training produced a non-finite loss or latent; the message names epoch and iteration
    (its ``failure`` is what ``model.pt`` records under ``record_failure``, docs/method.md §6.7)."""


def check_data_shape(cfg: RunConfig, data: ImageSplit) -> None:
    """Fail early, naming both shapes, when the generator cannot produce the data's images."""
    want = (cfg.model.channels, cfg.model.image_size, cfg.model.image_size)
    if data.shape != want:
        raise UserError(
            f"generator {cfg.model.generator!r} is configured for images {want} "
            f"(model.channels, model.image_size) but {data.meta.get('dataset')} gives "
            f"{data.shape}; "
            f"use the generator and sizes made for this dataset"
        )


def learning_iteration(
    model: LatentModel,
    x: Tensor,
    opt_g: torch.optim.Optimizer,
    opt_p: torch.optim.Optimizer | None,
    steps: int,
    step_size: float,
    generator: torch.Generator,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """One learning iteration of docs/method.md §6.1 on a batch x (B, C, H, W) in [-1, 1].

    Returns detached ``loss_g``, ``loss_p`` (nan for a prior with nothing to learn) and ``z``.
    """
    z, _ = infer_posterior(model, x, steps, step_size, noise=True, generator=generator, mask=mask)

    opt_g.zero_grad(set_to_none=True)
    loss_g = masked_sq_error(x, model.decode(z), mask).mean()  # (1/m) sum ||x - g(z)||^2
    loss_g.backward()
    opt_g.step()

    loss_p = model.prior.learning_loss(z, generator)
    if loss_p is not None:
        assert opt_p is not None
        opt_p.zero_grad(set_to_none=True)
        loss_p.backward()
        opt_p.step()
        loss_p = loss_p.detach()
    else:
        loss_p = torch.full((), float("nan"), device=x.device)
    return {"loss_g": loss_g.detach(), "loss_p": loss_p, "z": z}


def epoch_order(seed: int, epoch: int, n: int) -> Tensor:
    """The order of ``n`` examples in epoch ``epoch`` (0-based for learning; 2s-ABP's fit counts
    from 1), a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def reseeded_noise_seed(seed: int, epoch: int) -> int:
    """Seed of the Langevin noise generator of a run resumed after ``epoch`` epochs on another
    device type than the checkpoint's (docs/method.md §6.3): a CPU generator's state (5,056
    bytes) cannot be set on a CUDA one (16 bytes) or back, so the stream restarts from this pure
    function of (seed, epoch), unrelated to the run's other streams."""
    import numpy as np

    state = np.random.SeedSequence([seed % 2**64, epoch, 0x5EED]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))  # a non-negative int64


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    """The epochs after which a run keeps a snapshot: ``snapshots`` evenly spaced budgets
    ``round(j · epochs / snapshots)``, j = 1..snapshots, distinct and ≥ 1 (the last is
    ``epochs``, the model itself); none for ``snapshots`` = 0."""
    if snapshots <= 0:
        return []
    return sorted({max(1, round(j * epochs / snapshots)) for j in range(1, snapshots + 1)})


def restore_noise(rng: torch.Generator, saved: Tensor, seed: int, epoch: int, where: str) -> bool:
    """Set the Langevin noise generator ``rng`` to a checkpoint's state ``saved`` (after
    ``epoch`` epochs; ``where``: the checkpoint and the device it was made on, for the message).
    Another device type's state cannot be set (docs/method.md §6.3): then the stream restarts
    from :func:`reseeded_noise_seed`, said on stderr; returns whether it did."""
    if saved.numel() == rng.get_state().numel():
        rng.set_state(saved)
        return False
    rng.manual_seed(reseeded_noise_seed(seed, epoch))
    print(
        f"[lsnf] {where}, this run is on {rng.device}: the noise continues from a new stream "
        f"seeded by (seed, epoch) = ({seed}, {epoch}); epoch {epoch + 1} records "
        f"rng_reseeded: 1 in {layout.METRICS}",
        file=sys.stderr,
    )
    return True


def learning_epoch(
    model: LatentModel,
    data: ImageSplit,
    masks: Tensor | None,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer | None],
    rng: torch.Generator,
    cfg: RunConfig,
    epoch: int,
    on_iteration: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Epoch ``epoch`` (1-based) of learning iterations over ``data`` in the order
    :func:`epoch_order` gives (docs/method.md §6.1): full batches only (BatchNorm generators);
    returns the epoch's mean statistics. A non-finite loss or latent raises
    :class:`_NonFinite` naming it and the iteration."""
    from tqdm import tqdm

    opt_g, opt_p = optimizers
    device = rng.device
    n, bsz = len(data), cfg.train.batch_size
    n_batches = max(1, n // bsz)
    order = epoch_order(cfg.seed, epoch - 1, n)
    model.train()
    sums = {"loss_g": 0.0, "loss_p": 0.0}
    start = time.perf_counter()
    bar = tqdm(
        total=n_batches,
        desc=f"epoch {epoch}/{cfg.train.epochs}",
        disable=not cfg.train.progress,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        file=sys.stderr,
    )
    with bar:
        for it in range(n_batches):
            if on_iteration is not None:
                on_iteration(epoch, it + 1)
            idx = order[it * bsz : (it + 1) * bsz]
            x = to_model_scale(data.images[idx]).to(device)  # (B, C, H, W)
            mask = None if masks is None else masks[idx].to(device)  # (B, 1, H, W)
            out = learning_iteration(
                model, x, opt_g, opt_p, cfg.inference.steps, cfg.inference.step_size, rng, mask
            )
            # the logged scalars and the finiteness of z in one host sync per iteration
            finite_z = torch.isfinite(out["z"]).all().to(out["loss_g"].dtype)
            loss_g, loss_p, z_ok = torch.stack(
                [out["loss_g"], out["loss_p"].to(out["loss_g"]), finite_z]
            ).tolist()
            for what, bad in (
                ("generator loss", not math.isfinite(loss_g)),
                ("prior loss", opt_p is not None and not math.isfinite(loss_p)),
                ("posterior latent z", not z_ok),
            ):
                if bad:
                    raise _NonFinite(what, it + 1, n_batches)
            sums["loss_g"] += loss_g
            sums["loss_p"] += loss_p
            rate = (it + 1) * x.shape[0] / (time.perf_counter() - start)
            bar.set_postfix(loss_g=f"{loss_g:.2f}", loss_p=f"{loss_p:.3g}", img_s=f"{rate:.0f}")
            bar.update()
    seconds = time.perf_counter() - start
    stats = {
        "epoch": float(epoch),
        "loss_g": sums["loss_g"] / n_batches,
        "loss_p": sums["loss_p"] / n_batches,
        "train_mse_per_pixel": sums["loss_g"] / n_batches / math.prod(data.shape),
        "iteration": float(epoch * n_batches),
        "lr": opt_g.param_groups[0]["lr"],
        "seconds": seconds,
        "images_per_s": n_batches * bsz / seconds,
    }
    if opt_p is None:  # nothing learned: no prior loss to report
        del stats["loss_p"]
    return stats


class _NonFinite(Exception):
    """What :func:`learning_epoch` found non-finite, at which iteration of how many."""

    def __init__(self, what: str, iteration: int, n_batches: int) -> None:
        super().__init__(what)
        self.what, self.iteration, self.n_batches = what, iteration, n_batches


@dataclass
class Trainer:
    """Holds the run's state; :meth:`run` trains to ``cfg.train.epochs`` resuming if possible
    (its files: :class:`lsnf.training.run_dir.RunDir`)."""

    cfg: RunConfig
    run_dir: Path
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None
    on_iteration: Callable[[int, int], None] | None = None
    restart_if_changed: bool = False  # a checkpoint of another config: start over, not refuse
    extractor: Path | None = None  # domain extractor weights: validation KID (generation)

    def __post_init__(self) -> None:
        if self.cfg.prior.fit == "two_stage":
            raise UserError(
                "prior.fit: two_stage is fitted after an ABP model, not trained: use "
                "`lsnf fit-two-stage CONFIG --from ABP/model.pt` (docs/method.md §6.6)"
            )
        self.run_dir = Path(self.run_dir)
        self.dir = RunDir(self.run_dir)
        self.device = setup_device(self.cfg)
        self.data = load_split(self.cfg.data, "train")
        check_data_shape(self.cfg, self.data)
        # learning from incomplete data (docs/method.md §6.2): hidden pixels are erased at load, and
        # the likelihood and generator loss see observed pixels only
        self.masks = corruption_masks(self.cfg.data, self.data)  # (N, 1, H, W) or None
        if self.masks is not None:
            self.data = erase_hidden(self.data, self.masks)
        self.model = build_model(self.cfg).to(self.device)
        t = self.cfg.train
        self.opt_g = torch.optim.Adam(self.model.generator.parameters(), lr=t.lr, betas=t.betas)
        prior_params = list(self.model.prior.parameters())
        self.opt_p = (
            torch.optim.Adam(prior_params, lr=self.cfg.prior.lr, betas=t.betas)
            if prior_params
            else None
        )
        self.optimizers = [o for o in (self.opt_g, self.opt_p) if o is not None]
        self.schedulers = [
            torch.optim.lr_scheduler.ExponentialLR(o, gamma=t.lr_decay) for o in self.optimizers
        ]
        self.rng = torch.Generator(device=self.device).manual_seed(self.cfg.seed)
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, float]] = []  # validation point 0, then one row per epoch
        self.validator = None
        self.reseeded = False  # the noise generator was re-seeded on resume (§6.3)
        self.snapshots = set(snapshot_epochs(t.epochs, t.snapshots))  # epochs to keep (§9.1)
        if t.validate_every > 0:
            from lsnf.training.validation import Validator

            self.validator = Validator.create(self.cfg, self.data, self.extractor, str(self.device))
        if (state := self.dir.resume(self.cfg, self.restart_if_changed, self.device)) is not None:
            self._resume(state)

    def state(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "rng": self.rng.get_state(),
            "rng_device": self.device.type,
            "history": [without_timings(h) for h in self.history],
            "data": self.data.meta,
        }

    def _resume(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sched, s in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(s)
        self.epoch = int(state["epoch"])
        saved = state["rng"].cpu()
        made_on = state.get("rng_device", f"another device's ({saved.numel()} bytes)")
        where = f"{self.dir.checkpoint}: its Langevin noise generator is {made_on}"
        self.reseeded = restore_noise(self.rng, saved, self.cfg.seed, self.epoch, where)
        self.history = self.dir.with_timings(list(state["history"]))
        print(f"[lsnf] resuming {self.run_dir} after epoch {self.epoch}", file=sys.stderr)

    def _failed(self, found: _NonFinite, epoch: int) -> NonFiniteError:
        kept = (
            f"the last good checkpoint {self.dir.checkpoint} (epoch {self.epoch}) is kept"
            if self.dir.checkpoint.exists()
            else "no checkpoint had been written yet"
        )
        return NonFiniteError(
            f"non-finite {found.what} at epoch {epoch}, iteration {found.iteration}; {kept}. "
            f"Lower the learning rate or the Langevin step size.",
            Failure(
                f"non-finite {found.what}", epoch, (epoch - 1) * found.n_batches + found.iteration
            ),
        )

    def train_epoch(self) -> dict[str, float]:
        """One pass over the data (docs/method.md §6.1); returns the epoch's mean statistics."""
        epoch = self.epoch + 1
        try:
            return learning_epoch(self.model, self.data, self.masks, (self.opt_g, self.opt_p),
                                  self.rng, self.cfg, epoch, self.on_iteration)  # fmt: skip
        except _NonFinite as found:
            raise self._failed(found, epoch) from None

    def _validates(self, epoch: int) -> bool:
        every = self.cfg.train.validate_every
        return self.validator is not None and (epoch % every == 0 or epoch == self.cfg.train.epochs)

    def _validate(self, stats: dict[str, float]) -> None:
        """Score the model on the validation split into ``stats`` (docs/method.md §6.5); with
        ``train.select: best_validation``, keep a new best in ``best.pt``."""
        assert self.validator is not None
        values = self.validator.measure(self.model)
        self.model.train()
        stats.update(values)
        if self.cfg.train.select == "best_validation" and self.epoch > 0:
            key = _selection_key(values)
            best = [h[key] for h in self.history if h.get("epoch", 0) > 0 and key in h]
            if not best or values[key] < min(best):
                save_checkpoint(self.dir.best, {**self.state(), "history": []})

    def _judged(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with the convergence status of its history (docs/method.md §6.5)."""
        if self.validator is not None:
            from lsnf.training.convergence import model_status

            state["convergence"] = model_status(
                state["history"], self.validator.references, self.cfg.train.convergence_tolerance
            )
            state["validation_setup"] = self.validator.describe()
        return state

    def _final_state(self) -> dict[str, Any]:
        """What ``model.pt`` holds: the selected parameters (last, or best validation point),
        the whole history and the convergence status."""
        state = self._judged(self.state())
        selected = {"by": "last epoch", "epoch": self.epoch}
        if self.cfg.train.select == "best_validation" and self.dir.best.exists():
            best = load_checkpoint(self.dir.best, map_location=self.device)
            key = _selection_key(self.validator.references) if self.validator else "valid_mse"
            selected = {"by": f"best {key}", "epoch": int(best["epoch"])}
            state["model"] = best["model"]
        return {**state, "selected": selected}

    def _snapshot_state(self) -> dict[str, Any]:
        """A snapshot of the current epoch (docs/method.md §9.1): ``model.pt``'s format, as if
        training had stopped here (its history and convergence are this prefix's)."""
        state = self.state()
        for key in ("optimizers", "schedulers", "rng"):
            del state[key]
        return {**self._judged(state), "selected": {"by": "snapshot", "epoch": self.epoch}}

    def run(self, record_failure: bool = False) -> LatentModel | None:
        """Train the remaining epochs; validate and checkpoint; write ``model.pt`` when done.
        Training that fails (:class:`NonFiniteError`) raises, or with ``record_failure`` writes
        ``model.pt`` as the failure's record (docs/method.md §6.7) and returns None."""
        try:
            return self._run()
        except NonFiniteError as err:
            if not record_failure:
                raise
            self.dir.record_failure(self.cfg.to_dict(), self.epoch, self.history, self.data.meta,
                                    err.failure)  # fmt: skip
            return None

    def _run(self) -> LatentModel:
        self.dir.start(self.cfg, self.data.describe())
        if self.epoch == 0 and self._validates(0) and not self.history:
            start = {"epoch": 0.0, "iteration": 0.0}
            self._validate(start)
            self.history.append(start)
            if self.on_epoch_end is not None:
                self.on_epoch_end(0, start)
        while self.epoch < self.cfg.train.epochs:
            stats = self.train_epoch()
            for sched in self.schedulers:
                sched.step()  # lr x lr_decay per epoch
            self.epoch += 1
            if self.reseeded:  # the first epoch after a resume on another device type
                stats["rng_reseeded"] = 1.0
                self.reseeded = False
            if self._validates(self.epoch):
                self._validate(stats)
            if self.cfg.compile and (compiling := compile_seconds()) is not None:
                stats["compile_s"] = compiling  # this process's, so far (docs/method.md §5.5)
            self.history.append(stats)
            if self.epoch in self.snapshots and self.epoch < self.cfg.train.epochs:
                self.dir.save_snapshot(self.epoch, self._snapshot_state())
            self.dir.save_epoch(self.state(), self.history)
            if self.on_epoch_end is not None:
                self.on_epoch_end(self.epoch, stats)
        self.dir.write_metrics(self.history)
        final = self._final_state()
        self.dir.finish(final)
        self.model.load_state_dict(final["model"])
        if (status := final.get("convergence")) is not None:
            print(f"[lsnf] {status['status']}: {status['detail']}", file=sys.stderr)
        return self.model


def _selection_key(values: dict[str, float]) -> str:
    """The validation score ``train.select: best_validation`` ranks by: KID where measured
    (sample quality, as the authors select by FID), else reconstruction MSE."""
    return "valid_kid" if "valid_kid" in values else "valid_mse"


def fit(
    cfg: RunConfig,
    run_dir: str | Path,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    on_iteration: Callable[[int, int], None] | None = None,
    restart_if_changed: bool = False,
    extractor: str | Path | None = None,
    record_failure: bool = False,
) -> LatentModel | None:
    """Train ``cfg`` into ``run_dir``, resuming from its checkpoint if there is one (one of
    another config is an error, or with ``restart_if_changed`` is discarded); ``extractor``:
    the domain extractor's weights, for the validation KID (docs/method.md §6.5). Training
    that fails (:class:`NonFiniteError`) raises, or with ``record_failure`` writes ``model.pt``
    as the failure's record and returns None (§6.7)."""
    trainer = Trainer(
        cfg,
        Path(run_dir),
        on_epoch_end,
        on_iteration,
        restart_if_changed,
        None if extractor is None else Path(extractor),
    )
    return trainer.run(record_failure)
