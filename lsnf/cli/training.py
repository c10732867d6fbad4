"""``lsnf train``, ``fit-two-stage``, ``show-config`` and ``convergence``: learning a model into a
run directory (docs/method.md §6) and judging its convergence again (§6.5)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from lsnf import config, layout
from lsnf.cli.options import (
    command,
    failure_option,
    run_config_options,
    tracker,
    tracking_options,
)
from lsnf.errors import UserError

__all__ = ["add_commands"]


def cmd_train(args: argparse.Namespace) -> None:
    from functools import partial

    from lsnf.tracking.log import log_epoch, log_run_config, log_training_end
    from lsnf.training.train import fit

    cfg = config.load_config(args.config, args.set)
    if (track := tracker(args, cfg)) is not None:
        log_run_config(track, cfg)
    epoch_logger = None if track is None else partial(log_epoch, track)
    model = fit(
        cfg,
        args.out,
        epoch_logger,
        restart_if_changed=args.restart_if_changed,
        extractor=args.extractor,
        record_failure=args.record_failure,
    )
    if track is not None:
        log_training_end(track, Path(args.out))
    done = "trained" if model is not None else "failed to train, recorded"
    print(f"[lsnf] {done}: {Path(args.out) / layout.MODEL}")


def cmd_fit_two_stage(args: argparse.Namespace) -> None:
    from lsnf.tracking.log import log_run_config, log_training_end, log_training_metrics
    from lsnf.training.two_stage import fit_two_stage

    cfg = config.load_config(args.config, args.set)
    if (track := tracker(args, cfg)) is not None:  # the run starts with the fit: its duration
        log_run_config(track, cfg)
    model = fit_two_stage(cfg, args.source, args.out, record_failure=args.record_failure)
    if track is not None:  # its ABP model's epochs, then the fit's (as `track sync` logs)
        log_training_metrics(track, Path(args.out))
        log_training_end(track, Path(args.out))
    done = "2s-ABP fitted" if model is not None else "2s-ABP failed, recorded"
    print(f"[lsnf] {done}: {Path(args.out) / layout.MODEL}")


def cmd_show_config(args: argparse.Namespace) -> None:
    cfg = config.load_config(args.config, args.set)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")


def cmd_convergence(args: argparse.Namespace) -> None:
    from lsnf.training.rejudge import budget_table, rewrite_convergence

    if args.rewrite and args.tolerance is not None:
        raise UserError("--rewrite re-judges a model with its own train.convergence_tolerance: "
                        "drop --tolerance")  # fmt: skip
    print(budget_table(args.model, args.tolerance))
    if args.rewrite:
        status = rewrite_convergence(args.model)
        print(f"[lsnf] rewrote {args.model}'s convergence record: {status}")


def add_commands(sub: Any) -> None:
    p = command(sub, "train", cmd_train, "train a model from a run config (resumes if interrupted)")
    run_config_options(p, out="run directory (checkpoint.pt, model.pt, ...)")
    p.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="discard, not refuse, a checkpoint.pt made with another config",
    )
    p.add_argument(
        "--extractor",
        help="weights of the domain FID extractor (lsnf train-extractor): the validation curves "
        "add KID of samples (docs/method.md §6.5)",
    )
    failure_option(p)
    tracking_options(p)

    p = command(
        sub,
        "fit-two-stage",
        cmd_fit_two_stage,
        "2s-ABP: fit a flow prior to a trained ABP model's inferred latents (docs/method.md §6.6)",
    )
    run_config_options(p, out="run directory of the 2s-ABP model (model.pt, ...)")
    p.add_argument("--from", dest="source", required=True, help="the ABP model's model.pt")
    failure_option(p)
    tracking_options(p)
    run_config_options(
        command(sub, "show-config", cmd_show_config, "print the resolved run config")
    )

    p = command(
        sub,
        "convergence",
        cmd_convergence,
        "a trained model's convergence status had it stopped after each earlier epoch",
    )
    p.add_argument("model", help="its model.pt (or checkpoint.pt)")
    p.add_argument("--tolerance", type=float, help="default: the run's train.convergence_tolerance")
    p.add_argument(
        "--rewrite",
        action="store_true",
        help="replace the model's convergence record by this lsnf's judgement of its curves "
        "(a model trained under an older rule; its parameters stay as they are)",
    )
