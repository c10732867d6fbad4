"""``lsnf track`` and ``bench``: MLflow from the files on disk (:mod:`lsnf.tracking.sync`) and
the speed benchmark (:mod:`lsnf.bench`)."""

from __future__ import annotations

import argparse
from typing import Any

from lsnf import config, layout
from lsnf.cli.options import command, device_option, mlflow_options
from lsnf.errors import UserError

__all__ = ["add_commands"]


def cmd_track(args: argparse.Namespace) -> None:
    from lsnf.io import atomic_write_bytes
    from lsnf.tracking.sync import log_evaluations, sync

    if args.action == "sync":
        if args.files or args.out:
            raise UserError("`lsnf track sync` takes no files and no --out (it logs all on disk)")
        print(sync(args.results_dir, args.mlflow_uri, args.mlflow_experiment))
        return
    if not args.mlflow_uri:
        raise UserError("lsnf track evaluations needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    summary = log_evaluations(
        args.files, args.mlflow_uri, args.mlflow_experiment, args.mlflow_failure_log
    )
    if args.out:
        atomic_write_bytes(args.out, lambda fh: fh.write((summary + "\n").encode()))
    print(summary)


def cmd_bench(args: argparse.Namespace) -> None:
    from lsnf.bench import run_bench

    precisions = tuple(args.precisions.split(","))
    if not set(precisions) <= set(config.PRECISIONS):
        raise UserError(f"--precisions: choose from {', '.join(config.PRECISIONS)}")
    run_bench(
        args.shapes.split(","),
        args.batch_size,
        args.blocks,
        args.steps_per_block,
        precisions,
        args.device,
    )


def add_commands(sub: Any) -> None:
    p = command(
        sub,
        "track",
        cmd_track,
        "MLflow: `lsnf track sync` logs everything on disk; `lsnf track evaluations FILES` logs "
        "those evaluation outputs (the workflow's one MLflow job for its evaluations)",
    )
    p.add_argument("action", choices=["sync", "evaluations"])
    p.add_argument("files", nargs="*", help="evaluations: result JSONs and grids")
    p.add_argument("--results-dir", default=layout.ROOT)
    mlflow_options(p)
    p.add_argument("--out", default=None, help="evaluations: the record of what was logged")

    p = command(sub, "bench", cmd_bench, "speed of Langevin steps and training iterations")
    p.add_argument("--shapes", default="mnist,svhn,cifar10,celeba64", help="comma-separated")
    p.add_argument("--precisions", default=",".join(config.PRECISIONS), help="comma-separated")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--blocks", type=int, default=10, help="interleaved timed blocks (min kept)")
    p.add_argument("--steps-per-block", type=int, default=2)
    device_option(p, "cpu", "cpu; CUDA timings are synchronised")
