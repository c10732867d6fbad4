"""The options that several ``lsnf`` commands share, each defined once: a command's parser,
a run config with ``--set``, ``--device``, the MLflow tracking group and the tracker it opens,
``--record-failure`` and a FID extractor."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsnf import shipped
from lsnf.config import EXTRACTORS
from lsnf.errors import UserError

if TYPE_CHECKING:
    from lsnf.config import RunConfig
    from lsnf.tracking.store import Tracker

__all__ = [
    "check_tracking",
    "command",
    "device_option",
    "extractor_options",
    "failure_option",
    "mlflow_options",
    "run_config_options",
    "tracker",
    "tracking_options",
]

Run = Callable[[argparse.Namespace], None]


def command(sub: Any, name: str, run: Run | None, text: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` of ``sub`` (an ``add_subparsers`` action), running
    ``run`` with the parsed arguments."""
    p = sub.add_parser(name, help=text)
    if run is not None:
        p.set_defaults(run=run)
    return p


def device_option(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    """``--device``: cpu, cuda or cuda:N; ``what`` says what it replaces when not given."""
    p.add_argument("--device", default=default, help=f"cpu, cuda or cuda:N (default: {what})")


def mlflow_options(g: Any) -> None:
    """Where MLflow logs: its URI, experiment and the file its failures are appended to."""
    g.add_argument(
        "--mlflow-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="tracking URI (default $MLFLOW_TRACKING_URI)",
    )
    g.add_argument("--mlflow-experiment", default="lsnf")
    g.add_argument("--mlflow-failure-log", type=Path, help="append a JSON line here on failure")


def _run_key(given: str) -> str:
    """A ``--run-key``: EXPERIMENT/RUN, both named."""
    experiment, slash, run = given.partition("/")
    if not (experiment and slash and run) or "/" in run:
        raise argparse.ArgumentTypeError(
            f"{given!r} is not EXPERIMENT/RUN (e.g. mnist_anomaly/flow-digit1-seed0)"
        )
    return given


def tracking_options(p: argparse.ArgumentParser) -> None:
    """Which model a job is about, and whether and where it is logged to MLflow."""
    p.add_argument(
        "--run-key",
        type=_run_key,
        metavar="EXPERIMENT/RUN",
        help="which model this is (e.g. mnist_anomaly/flow-digit1-seed0): recorded in every "
        "result, which the tables need, and the MLflow run tag lsnf.run_key",
    )
    g = p.add_argument_group("MLflow tracking (best effort; result files are the truth)")
    g.add_argument("--track", action="store_true", help="log into MLflow (needs --run-key)")
    mlflow_options(g)


def check_tracking(args: argparse.Namespace) -> None:
    """Refuse ``--track`` without ``--run-key`` before a command's work, so a tracking flag
    error costs nothing."""
    if args.track and not args.run_key:
        raise UserError("--track needs --run-key EXPERIMENT/RUN: the MLflow run to log into")


def tracker(args: argparse.Namespace, cfg: RunConfig) -> Tracker | None:
    """A :class:`lsnf.tracking.store.Tracker` of the model ``--run-key`` (whose config is
    ``cfg``: its tags) if ``--track``, else None."""
    from lsnf.evaluation.results import model_identity
    from lsnf.tracking.log import open_tracker

    check_tracking(args)
    if not args.track:
        return None
    identity = model_identity(args.run_key, cfg)
    return open_tracker(identity, args.mlflow_uri, args.mlflow_experiment, args.mlflow_failure_log)


def _run_config(given: str) -> str:
    """A run config argument: the file, or the shipped one by that path or name."""
    try:
        return str(shipped.find_run_config(given))
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def run_config_options(p: argparse.ArgumentParser, out: str | None = None) -> None:
    """A run config (a file or a shipped name) with ``--set`` overrides, and ``--out``."""
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


def failure_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--record-failure",
        action="store_true",
        help="a non-finite loss writes model.pt as the record of a model that failed to train "
        "(exit 0; its evaluations and tables then say so), not an error (docs/method.md §6.7)",
    )


def extractor_options(p: argparse.ArgumentParser) -> None:
    device_option(p, "cpu", "cpu")
    p.add_argument("--extractor", required=True, help=" | ".join(EXTRACTORS))
    p.add_argument("--weights", help="extractor weights file")
    p.add_argument("--download", action="store_true", help="let torch-fidelity download")
