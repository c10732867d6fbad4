"""``lsnf prepare-data``, ``export-folder`` and ``shipped``: a run config's data (docs/protocols.md
§1-§2, §10) and the files lsnf ships."""

from __future__ import annotations

import argparse
from typing import Any

from lsnf import config
from lsnf.cli.options import command, run_config_options

__all__ = ["add_commands"]


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from lsnf.data.splits import manifest
    from lsnf.io import atomic_write_json

    atomic_write_json(args.out, manifest(config.load_config(args.config, args.set).data))


def cmd_export_folder(args: argparse.Namespace) -> None:
    from lsnf.data.export import write_folder

    counts = write_folder(config.load_config(args.config, args.set).data, args.out, args.n)
    print(f"{args.out}: " + ", ".join(f"{n} {split} images" for split, n in counts.items()))


def cmd_shipped(args: argparse.Namespace) -> None:
    from lsnf import __version__, shipped

    print(shipped.path(args.path) if args.path else shipped.describe(__version__))


def add_commands(sub: Any) -> None:
    p = command(sub, "prepare-data", cmd_prepare_data, "load (download if configured), check data")
    run_config_options(p, out="manifest JSON to write")
    p = command(
        sub,
        "export-folder",
        cmd_export_folder,
        "write a config's train and test images as PNG folders (the layout data.source: folder "
        "reads with data.folder.split: given)",
    )
    run_config_options(p, out="folder to create (train/, test/)")
    p.add_argument(
        "--n", type=int, help="at most this many images per split (drawn at random, seed 0)"
    )
    p = command(
        sub,
        "shipped",
        cmd_shipped,
        "the files lsnf ships (run configs, workflow configs, the workflow, published numbers) "
        "and where they are: a checkout's or an installed wheel's",
    )
    p.add_argument("--path", help="print only this shipped file's absolute path")
