"""The ``lsnf`` command: its parser, built from one module per command group (each module holds
its commands' options beside the functions that run them), and the dispatch. Bad input
(UserError, ConfigError, a missing file) is one line and exit 2; anything else keeps its
traceback."""

from __future__ import annotations

import argparse
import sys

from lsnf import config
from lsnf.cli import analysis, apply, data, evaluation, fid, tools, training
from lsnf.errors import UserError

__all__ = ["GROUPS", "build_parser", "main"]

# the command groups, in the order `lsnf --help` lists their commands
GROUPS = (training, evaluation, fid, data, apply, analysis, tools)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsnf",
        description="Latent-space normalizing-flow prior models (LFBM) and baselines (ABP, LEBM).",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
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
