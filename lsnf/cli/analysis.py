"""``lsnf tables``, ``curves``, ``budget`` and ``settle-proof``: the tables and figures of a
run's results (:mod:`lsnf.analysis`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lsnf import layout
from lsnf.cli.options import command
from lsnf.errors import UserError

__all__ = ["add_commands"]


def _min_seeds(args: argparse.Namespace) -> dict[str, int]:
    if args.min_seeds is not None and args.min_seeds < 1:
        raise UserError(f"--min-seeds {args.min_seeds}: give a number of seeds >= 1")
    return {} if args.min_seeds is None else {"min_seeds": args.min_seeds}


def cmd_tables(args: argparse.Namespace) -> None:
    from lsnf import shipped
    from lsnf.analysis.tables import write_tables

    versus = [tuple(v.split(":", 1)) for v in args.versus]
    if any(len(v) != 2 for v in versus):
        raise UserError("--versus takes A:B, two experiment names")
    seeds = _min_seeds(args)
    reference = args.reference or shipped.path("config/paper_reference.yaml")
    written = write_tables(
        args.results, reference, args.out_dir, args.floors, args.results_dir, versus, **seeds
    )
    print("\n".join(f"[lsnf] wrote {p}" for p in written))


def cmd_curves(args: argparse.Namespace) -> None:
    from lsnf.analysis.curves import plot_curves

    plot_curves(args.metrics, args.out)


def cmd_budget(args: argparse.Namespace) -> None:
    import pandas as pd

    from lsnf.analysis.forest import plot_budget

    tables = Path(args.tables)
    comparison = pd.read_csv(tables / layout.table_file("comparison", "csv"))
    measurements = pd.read_csv(tables / layout.table_file("measurements", "csv"))
    plot_budget(comparison, measurements, args.out)
    print(f"[lsnf] wrote {args.out}")


def cmd_settle_proof(args: argparse.Namespace) -> None:
    from lsnf.analysis.settle_proof import report, settle_proof_of_run
    from lsnf.io import atomic_write_text

    rows, counts = settle_proof_of_run(args.results_dir, **_min_seeds(args))
    if args.out:
        atomic_write_text(args.out, rows.to_csv(index=False))
    print(report(rows, counts))


def add_commands(sub: Any) -> None:
    p = command(sub, "tables", cmd_tables, "regenerate the paper's tables from result JSONs")
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
    p = command(sub, "curves", cmd_curves, "training curves; K_test plot (reconstruction.json)")
    p.add_argument("metrics", nargs="+")
    p.add_argument("--out", required=True, help="PNG to write")
    p = command(
        sub,
        "budget",
        cmd_budget,
        "verdicts against the training budget, from a run with one experiment per budget",
    )
    p.add_argument("--tables", default=layout.tables_dir(), help="its results/tables directory")
    p.add_argument("--out", required=True, help="PNG to write")
    p = command(
        sub,
        "settle-proof",
        cmd_settle_proof,
        "does a settled verdict hold? each verdict the rule settles at a snapshot budget E "
        "against the interval at 2E, from one run's courses (docs/method.md §9.1)",
    )
    p.add_argument("--results-dir", default=layout.ROOT, help="the run's results folder")
    p.add_argument("--min-seeds", type=int, help="as `lsnf tables --min-seeds` (default 2)")
    p.add_argument("--out", help="also write every (comparison, E) row to this CSV")
