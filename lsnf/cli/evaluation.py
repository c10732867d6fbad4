"""``lsnf eval NAME``: the evaluation NAME of :mod:`lsnf.evaluation.registry` on a trained
model, with the settings of a file (:mod:`lsnf.evaluation.run`); one subcommand per entry."""

from __future__ import annotations

import argparse
from typing import Any

from lsnf.cli.options import check_tracking, command, device_option, tracker, tracking_options
from lsnf.evaluation.registry import EVALUATIONS

__all__ = ["add_commands"]


def cmd_eval(args: argparse.Namespace) -> None:
    from lsnf.evaluation.results import save_outcome
    from lsnf.evaluation.run import evaluate_course, evaluate_file, load_settings
    from lsnf.tracking.log import log_outcome

    ev = EVALUATIONS[args.evaluation]
    settings = load_settings(ev, args.settings, args.set)
    check_tracking(args)  # before the work: a tracking flag error costs nothing
    where = {"device": args.device, "data_root": args.data_root}
    trained, outcome = evaluate_file(ev, settings, args.checkpoint, args.run_key, **where)
    result, grid = (args.out, getattr(args, "grid", None)) if ev.result else (None, args.out)
    files = save_outcome(outcome, result, grid)
    if getattr(args, "course", False):
        evaluate_course(ev, settings, trained, args.out, args.run_key, **where)
    if (track := tracker(args, trained.config)) is not None:
        log_outcome(track, outcome.record, files)
    print(f"[lsnf] {outcome.summary}")


def add_commands(sub: Any) -> None:
    evs = sub.add_parser("eval", help="evaluate a trained model; writes one result")
    evs = evs.add_subparsers(dest="evaluation", required=True)
    for ev in EVALUATIONS.values():
        p = command(evs, ev.name, cmd_eval, ev.help)
        tracking_options(p)
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
        device_option(p, None, "the checkpoint's")
        p.add_argument("--data-root", help="override data.root of the checkpoint")
