"""2s-ABP: a flow prior fitted after a Gaussian-prior generator (docs/method.md §6.6).

The ablation asks whether learning the flow jointly with the generator matters, or whether any
flow on ABP's latents would do:

1. take a trained ABP model (Gaussian prior, docs/method.md §3.1) and keep its generator;
2. infer each training image's latent with ABP's learning-time inference: K = ``inference.steps``
   noisy Langevin steps (5.1) from ``z0 ~ N(0, I)`` on the Gaussian-prior posterior, BatchNorm
   with running statistics (the generator is fixed), one seeded generator in image order; the
   validation images' latents alike;
3. fit the flow of ``prior.flow`` to those latents by maximum likelihood (the loss of §6 on
   fixed latents): ``train.epochs`` epochs of mini-batches of ``train.batch_size``, Adam with
   ``prior.lr`` decayed by ``train.lr_decay`` per epoch, the data order of epoch e from
   ``(seed, e)``;
4. the model: ABP's generator with that flow as its prior, sampled ancestrally like LFBM.

The fit's validation curve is the flow's negative log-likelihood of the validation latents,
per epoch; the model's convergence status is the worse of ABP's and that curve's (§6.5).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lsnf import layout
from lsnf.config import RunConfig, config_from_dict
from lsnf.core.model import LatentModel, build_model, infer_posterior
from lsnf.core.pixels import to_model_scale
from lsnf.data.splits import ImageSplit, load_split
from lsnf.errors import UserError
from lsnf.hardware import setup_device
from lsnf.io import read_json_lines
from lsnf.training.checkpoint import load_checkpoint, training_summary
from lsnf.training.convergence import FAILED, FLOW_FIT, NOT_CONVERGED, curve_text, judge_curve
from lsnf.training.failure import Failure, TrainingFailed
from lsnf.training.run_dir import RunDir
from lsnf.training.train import epoch_order

__all__ = ["fit_two_stage", "infer_latents"]


def _check_source(cfg: RunConfig, source: RunConfig, path: Path) -> None:
    """The 2s config must be the ABP model's own but for its prior (and device)."""
    if source.prior.kind != "gaussian" or source.prior.fit != "joint":
        raise UserError(
            f"{path} is not an ABP model (prior.kind: gaussian); 2s-ABP starts from one"
        )
    if source.model_copy(update={"prior": cfg.prior, "device": cfg.device}) != cfg:
        raise UserError(
            f"the 2s-ABP config differs from the config of {path} in more than its prior "
            f"(and device); retrain that ABP model with this config's settings, or fit from "
            f"the ABP model they describe"
        )


def infer_latents(
    model: LatentModel, images_u8: Tensor, cfg: RunConfig, generator: torch.Generator
) -> Tensor:
    """ABP's learning-time posterior samples of every image (N, d): step 2 of the module
    docstring."""
    device = next(model.parameters()).device
    model.eval()  # the generator is fixed: its running BatchNorm statistics
    out = []
    bsz = cfg.train.batch_size
    for start in range(0, images_u8.shape[0], bsz):
        x = to_model_scale(images_u8[start : start + bsz]).to(device)  # (B, C, H, W)
        z, _ = infer_posterior(
            model, x, cfg.inference.steps, cfg.inference.step_size, True, generator
        )  # (B, d)
        out.append(z.detach())
    return torch.cat(out)  # (N, d)


def _nll(model: LatentModel, z: Tensor) -> Tensor:
    """Per-latent negative log-likelihood under the flow (N,), no gradients."""
    with torch.no_grad():
        return -model.prior.log_prob(z)


def fit_two_stage(
    cfg: RunConfig, source_path: str | Path, out_dir: str | Path, record_failure: bool = False
) -> LatentModel | None:
    """Fit the 2s-ABP model of run config ``cfg`` from the ABP model at ``source_path`` into
    ``out_dir`` (``model.pt``, ``metrics.jsonl``, ``config.yaml``, ``data.json``), and a flow to
    each of that ABP run's snapshots (``snapshots/``: the 2s-ABP course, docs/method.md §9.1).
    A fit that fails (an ABP model that failed to train, a non-finite flow loss) raises
    :class:`TrainingFailed`, or with ``record_failure`` writes ``model.pt`` as the failure's
    record and returns None (§6.7)."""
    try:
        return _fit_two_stage(cfg, Path(source_path), Path(out_dir))
    except TrainingFailed as err:
        if not record_failure:
            raise
        _record_failure(cfg, Path(source_path), Path(out_dir), err.failure)
        return None


def _record_failure(cfg: RunConfig, source_path: Path, out_dir: Path, failure: Failure) -> None:
    """``model.pt`` as the record of a 2s-ABP model that failed (§6.7), with its ABP model's
    history and data; ``metrics.jsonl`` is the ABP model's."""
    state = load_checkpoint(source_path)
    metrics = source_path.parent / layout.METRICS
    RunDir(out_dir).record_failure(
        cfg.to_dict(), state.get("epoch", 0), state.get("history", []), state.get("data", {}),
        failure, rows=read_json_lines(metrics) if metrics.is_file() else [],
    )  # fmt: skip


def _fit_two_stage(cfg: RunConfig, source_path: Path, out_dir: Path) -> LatentModel:
    run = RunDir(out_dir)
    state = load_checkpoint(source_path)
    if "failed" in state:
        text = state["failed"]["text"]
        raise TrainingFailed(
            f"{source_path}: its ABP model failed to train ({text}); a 2s-ABP fit needs one "
            f"that trained",
            Failure(f"its ABP model failed to train ({text})"),
        )
    source = config_from_dict(state["config"], origin=str(source_path))
    if cfg.prior.fit != "two_stage" or cfg.prior.kind != "flow":
        raise UserError("a 2s-ABP config has prior.kind: flow and prior.fit: two_stage")
    _check_source(cfg, source, source_path)
    if cfg.data.corruption is not None:
        raise UserError("2s-ABP needs complete training images (data.corruption: null)")
    device = setup_device(cfg)
    train = load_split(cfg.data, "train")
    valid = load_split(cfg.data, "valid")
    run.forget_snapshots()  # an earlier fit's
    start = time.perf_counter()
    for snap in sorted((source_path.parent / layout.SNAPSHOTS).glob("epoch-*.pt")):
        snap_state = load_checkpoint(snap)
        _check_source(cfg, config_from_dict(snap_state["config"], origin=str(snap)), snap)
        _, snap_final, _ = _fit(cfg, snap_state, snap, train, valid, device)
        run.save_snapshot(int(snap_state["epoch"]), snap_final)
    course_seconds = time.perf_counter() - start

    start = time.perf_counter()
    model, final, rows = _fit(cfg, state, source_path, train, valid, device)
    seconds = time.perf_counter() - start
    run.start(cfg, train.describe())
    source_rows = read_json_lines(source_path.parent / layout.METRICS)
    summary = training_summary(state)
    last = {
        "epoch": float(summary["epochs"]),
        "stage": 2.0,
        "seconds": seconds,
        "course_s": course_seconds,  # the flows fitted to the snapshots, not the model's cost
        **rows[-1],
    }
    run.write_metrics([*source_rows, last])
    run.finish(final)
    return model


def _fit(
    cfg: RunConfig,
    state: dict[str, Any],
    source_path: Path,
    train: ImageSplit,
    valid: ImageSplit,
    device: torch.device,
) -> tuple[LatentModel, dict[str, Any], list[dict[str, float]]]:
    """Steps 2-4 of the module docstring on the ABP checkpoint ``state``: the fitted model,
    the 2s-ABP checkpoint's state and the fit's rows (one per epoch)."""
    source = config_from_dict(state["config"], origin=str(source_path))
    abp = build_model(source)
    abp.load_state_dict(state["model"])
    abp = abp.to(device)
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    z_train = infer_latents(abp, train.images, cfg, rng)  # (N, d)
    z_valid = infer_latents(abp, valid.images, cfg, rng)  # (V, d)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    generator_state = {k: v for k, v in state["model"].items() if k.startswith("generator.")}
    model.load_state_dict({**model.state_dict(), **generator_state})
    opt = torch.optim.Adam(model.prior.parameters(), lr=cfg.prior.lr, betas=cfg.train.betas)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.train.lr_decay)
    bsz = cfg.train.batch_size
    n_batches = max(1, len(z_train) // bsz)
    curve = {0: _nll(model, z_valid).double().cpu().numpy()}
    rows: list[dict[str, float]] = []
    for epoch in range(1, cfg.train.epochs + 1):
        order = epoch_order(cfg.seed, epoch, len(z_train))
        total = 0.0
        for it in range(n_batches):
            z = z_train[order[it * bsz : (it + 1) * bsz]]  # (B, d)
            opt.zero_grad(set_to_none=True)
            loss = model.prior.learning_loss(z, None)  # -(1/m) sum log p(z)
            loss.backward()
            opt.step()
            total += loss.item()
            if not math.isfinite(total):
                failure = Failure("non-finite flow loss", epoch, (epoch - 1) * n_batches + it + 1)
                raise TrainingFailed(f"{failure.text()}; lower prior.lr", failure)
        sched.step()
        curve[epoch] = _nll(model, z_valid).double().cpu().numpy()
        rows.append(
            {
                "fit_epoch": epoch,
                "flow_nll": total / n_batches,
                FLOW_FIT: float(curve[epoch].mean()),
            }
        )

    summary = training_summary(state)
    fit = judge_curve(
        FLOW_FIT,
        {e: float(v.mean()) for e, v in curve.items()},
        cfg.train.convergence_tolerance,
        None,
    )
    final = {
        **{k: v for k, v in state.items() if k not in ("optimizers", "schedulers", "rng")},
        "config": cfg.to_dict(),
        "model": model.state_dict(),
        "convergence": _combined(summary.get("convergence"), fit),
        "two_stage": {
            "source": str(source_path),
            "source_checkpoint": state.get("selected"),
            "latents": {"train": len(z_train), "valid": len(z_valid)},
            "inference": {
                "steps": cfg.inference.steps,
                "step_size": cfg.inference.step_size,
                "noise": True,
                "init": "N(0, I)",
                "batchnorm": "running",
            },
            "fit": rows,
        },
    }
    return model, final, rows


def _combined(abp: dict[str, Any] | None, fit: dict[str, Any]) -> dict[str, Any]:
    """The 2s model's status: the worse of its ABP generator's and its flow fit's."""
    from lsnf.training.convergence import CONVERGED, NOT_MEASURED

    order = [FAILED, NOT_CONVERGED, NOT_MEASURED, CONVERGED]
    abp_status = (abp or {}).get("status", NOT_MEASURED)
    status = min((abp_status, fit["status"]), key=order.index)
    detail = (
        f"ABP generator: {abp_status} ({(abp or {}).get('detail', 'no validation curves')}); "
        f"flow fit: {curve_text(FLOW_FIT, fit)}"
    )
    curves = {**(abp or {}).get("curves", {}), FLOW_FIT: fit}
    return {**(abp or {}), "status": status, "detail": detail, "curves": curves}
