"""Command line: ``lsnf train``, ``lsnf eval ...``, ``lsnf fid-stats``, ``lsnf train-extractor``,
``lsnf bench``. Each evaluation writes one JSON result (see :mod:`lsnf.results`).

Heavy libraries are imported inside the commands, so ``lsnf --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]


def _add_tracking(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("MLflow tracking (best effort; result files are the truth)")
    g.add_argument("--run-key", default=None, help="MLflow run tag lsnf.run_key; enables tracking")
    g.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="tracking URI (default $MLFLOW_TRACKING_URI)")  # fmt: skip
    g.add_argument("--mlflow-experiment", default="lsnf")
    g.add_argument(
        "--mlflow-failure-log",
        default=None,
        type=Path,
        help="append a JSON line here if tracking fails (the workflow reports it)",
    )


def _tracker(args: argparse.Namespace) -> Any:
    """A :class:`lsnf.tracking.Tracker` if tracking was asked for, else None."""
    if not getattr(args, "run_key", None):
        return None
    if not args.mlflow_uri:
        raise SystemExit("lsnf: error: --run-key needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    from lsnf.tracking import Tracker

    return Tracker(
        args.mlflow_uri, args.mlflow_experiment, args.run_key, failure_log=args.mlflow_failure_log
    )


def _track_result(args: argparse.Namespace, record: dict[str, Any], files: list[str]) -> None:
    tracker = _tracker(args)
    if tracker is not None:
        tracker.log_metrics({record["mlflow_metric"]: record["value"]})
        tracker.log_artifacts([args.out, *files], subdir="results")


def _add_eval_common(p: argparse.ArgumentParser, inference: bool = True) -> None:
    _add_tracking(p)
    p.add_argument("checkpoint", help="a trained model (model.pt)")
    p.add_argument("--out", required=True, help="result JSON to write")
    p.add_argument("--device", default=None, help="override the checkpoint's device (cpu, cuda)")
    p.add_argument("--data-root", default=None, help="override data.root of the checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of z0 / samples (default 0)")
    p.add_argument("--batch-size", type=int, default=100)
    if inference:
        p.add_argument("--split", default="test", choices=["train", "test"])
        p.add_argument("--n", type=int, default=None, help="use the first N images (default all)")
        p.add_argument("--steps", type=int, default=None, help="K_test (default: config's)")
        p.add_argument("--step-size", type=float, default=None, help="default: config's")


def _add_mask(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mask", default="center_square",
                   help="center_square | salt_pepper | random_square (lsnf.masks)")  # fmt: skip
    p.add_argument("--mask-p", type=float, default=0.5, help="salt_pepper: hidden fraction")
    p.add_argument("--mask-hole", type=int, default=32, help="random_square: side")
    p.add_argument("--mask-seed", type=int, default=0)


def _add_extractor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extractor", required=True, help="inception-v3-compat | lsnf-domain-cnn")
    p.add_argument("--weights", default=None, help="extractor weights file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsnf",
        description="Latent-space normalizing-flow prior models (LFBM) and baselines (ABP, LEBM).",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from a run config (resumes if interrupted)")
    p.add_argument("config", help="run config YAML")
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, model.pt, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set train.epochs=3 (repeatable)")  # fmt: skip
    _add_tracking(p)

    p = sub.add_parser("show-config", help="print the validated, resolved run config")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    ev = sub.add_parser("eval", help="evaluate a trained model; writes one JSON result")
    evs = ev.add_subparsers(dest="metric", required=True)
    p = evs.add_parser("recon", help="reconstruction MSE per pixel ([-1, 1]) after inference")
    _add_eval_common(p)
    p.add_argument("--grid", default=None, help="also save a reconstruction grid PNG here")
    p = evs.add_parser("anomaly", help="anomaly AUPRC (anomaly protocol test split)")
    _add_eval_common(p)
    p = evs.add_parser("fid", help="FID of model samples against reference statistics")
    _add_eval_common(p, inference=False)
    _add_extractor(p)
    p.add_argument("--stats", required=True, help="reference statistics from `lsnf fid-stats`")
    p.add_argument("--n", type=int, required=True, help="number of generated samples")
    p = evs.add_parser("inpaint", help="supervised inpainting: hole MSE/PSNR/SSIM (test split)")
    _add_eval_common(p)
    _add_mask(p)
    p.add_argument("--completions", type=int, default=10, help="completions per image")
    p.add_argument("--grid", default=None, help="also save truth | masked | completions PNG")
    p = evs.add_parser("recover", help="recovery error on the hidden pixels of training images")
    _add_eval_common(p)
    p.add_argument("--grid", default=None, help="also save truth | corrupted | recovered PNG")
    p = evs.add_parser("samples", help="PNG grid of ancestral samples")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    _add_tracking(p)

    p = sub.add_parser("fid-stats", help="FID reference statistics of a data split")
    p.add_argument("config", help="run config (its data section is used)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--n", type=int, default=None, help="first N images (default all)")
    p.add_argument("--out", required=True, help=".npz to write")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    _add_extractor(p)

    p = sub.add_parser("train-extractor", help="train the domain FID feature extractor")
    p.add_argument("config", help="run config (its data section is used, standard protocol)")
    p.add_argument("--out", required=True, help="weights file to write")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("prepare-data", help="load (download if configured) and check a dataset")
    p.add_argument("config", help="run config (its data section is used)")
    p.add_argument("--out", required=True, help="manifest JSON to write")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("tables", help="regenerate the paper's tables from result JSONs")
    p.add_argument("results", nargs="+", help="result JSON files")
    p.add_argument("--reference", required=True, help="published numbers (YAML)")
    p.add_argument("--out-dir", required=True)

    p = sub.add_parser("track-init", help="create the MLflow store and experiment (once)")
    p.add_argument("--mlflow-uri", default=os.environ.get("MLFLOW_TRACKING_URI"), required=False)
    p.add_argument("--mlflow-experiment", default="lsnf")
    p.add_argument("--mlflow-failure-log", default=None, type=Path)

    p = sub.add_parser("curves", help="plot training curves from metrics.jsonl files")
    p.add_argument("metrics", nargs="+")
    p.add_argument("--out", required=True, help="PNG to write")

    p = sub.add_parser("bench", help="speed of Langevin steps and training iterations")
    p.add_argument("--shapes", default="svhn,cifar10,celeba64", help="comma-separated")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--blocks", type=int, default=5, help="timed blocks (min is reported)")
    p.add_argument("--steps-per-block", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    return parser


def _load_eval_model(args: argparse.Namespace) -> tuple[Any, Any]:
    from lsnf.train import load_model

    model, cfg, _ = load_model(args.checkpoint, device=args.device)
    if getattr(args, "data_root", None):
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": args.data_root})})
    return model, cfg


def _inference_settings(args: argparse.Namespace, cfg: Any) -> Any:
    from lsnf.metrics.inference import InferenceSettings

    return InferenceSettings(
        steps=args.steps if args.steps is not None else cfg.inference.test_steps,
        step_size=args.step_size if args.step_size is not None else cfg.inference.test_step_size,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _split(cfg: Any, split: str, n: int | None) -> Any:
    from lsnf.data import ImageSplit, load_split

    data = load_split(cfg.data, split)
    if n is not None:
        data = ImageSplit(data.images[:n], data.labels[:n], {**data.meta, "n": min(n, len(data))})
    return data


def cmd_train(args: argparse.Namespace) -> int:
    from lsnf.config import load_config
    from lsnf.train import MODEL_NAME, fit

    cfg = load_config(args.config, args.set)
    tracker = _tracker(args)
    on_epoch_end = None
    if tracker is not None:
        tracker.log_params(cfg.to_dict(), tags={"lsnf.prior": cfg.prior.kind,
                                                "lsnf.dataset": cfg.data.name})  # fmt: skip
        on_epoch_end = lambda epoch, stats: tracker.log_metrics(stats, step=epoch)
    fit(cfg, args.out, on_epoch_end=on_epoch_end)
    if tracker is not None:
        out = Path(args.out)
        tracker.log_artifacts([out / "metrics.jsonl", out / "config.yaml"], subdir="training")
        tracker.set_terminated()
    print(f"[lsnf] trained: {Path(args.out) / MODEL_NAME}")
    return 0


def cmd_show_config(args: argparse.Namespace) -> int:
    import yaml

    from lsnf.config import load_config

    print(yaml.safe_dump(load_config(args.config, args.set).to_dict(), sort_keys=False), end="")
    return 0


def cmd_eval_recon(args: argparse.Namespace) -> int:
    import torch

    from lsnf.metrics.grids import reconstruction_pairs, save_grid
    from lsnf.metrics.inference import infer_split, reconstruction_mse
    from lsnf.results import make_result, write_result

    model, cfg = _load_eval_model(args)
    settings = _inference_settings(args, cfg)
    data = _split(cfg, args.split, args.n)
    mse = reconstruction_mse(model, data.images, settings)
    record = make_result("reconstruction_mse", mse, len(data), cfg, data.meta, args.checkpoint,
                         scale="[-1, 1] per pixel", inference=settings.describe(),
                         mlflow_metric=f"reconstruction_mse.{args.split}")  # fmt: skip
    write_result(args.out, record)
    if args.grid:
        x, z = next(infer_split(model, data.images[:50], settings))
        with torch.no_grad():
            save_grid(reconstruction_pairs(x, model.generator(z)), args.grid, nrow=10)
    _track_result(args, record, [args.grid] if args.grid else [])
    print(f"[lsnf] reconstruction MSE {mse:.5f} on {len(data)} {data.meta['dataset']} "
          f"{args.split} images, K_test={settings.steps}")  # fmt: skip
    return 0


def cmd_eval_anomaly(args: argparse.Namespace) -> int:
    from lsnf.metrics.inference import anomaly_scores, auprc
    from lsnf.results import make_result, write_result

    model, cfg = _load_eval_model(args)
    if cfg.data.protocol != "anomaly":
        raise SystemExit(f"{args.checkpoint} was not trained with data.protocol: anomaly")
    settings = _inference_settings(args, cfg)
    data = _split(cfg, args.split, args.n)
    scores = anomaly_scores(model, data.images, settings)
    value = auprc(scores, data.labels)
    record = make_result(
        "anomaly_auprc", value, len(data), cfg, data.meta, args.checkpoint,
        n_anomalous=int(data.labels.sum()), inference=settings.describe(),
        mlflow_metric="anomaly_auprc",
        score="||x - g(z*)||^2 / (2 sigma^2) - log p(z*)"
        + (" (EBM prior: unnormalised)" if cfg.prior.kind == "ebm" else ""),
    )  # fmt: skip
    write_result(args.out, record)
    _track_result(args, record, [])
    print(f"[lsnf] AUPRC {value:.4f} (held-out digit {cfg.data.held_out_digit}, n={len(data)})")
    return 0


def cmd_eval_inpaint(args: argparse.Namespace) -> int:
    from lsnf.data import to_unit_range
    from lsnf.masks import make_masks
    from lsnf.metrics.grids import completion_rows, save_grid
    from lsnf.metrics.inpainting import evaluate_completion
    from lsnf.results import make_result, write_result

    model, cfg = _load_eval_model(args)
    settings = _inference_settings(args, cfg)
    data = _split(cfg, args.split, args.n)
    params = {"salt_pepper": {"p": args.mask_p}, "random_square": {"hole": args.mask_hole}}
    mask_params = params.get(args.mask, {})
    masks = make_masks(args.mask, len(data), data.shape[1], args.mask_seed, **mask_params)
    metrics, first = evaluate_completion(
        model, data.images, masks, args.completions, settings.steps, settings.step_size,
        args.seed, args.batch_size, init="prior",
    )  # fmt: skip
    record = make_result(
        "inpainting_mse", metrics["mse"], len(data), cfg, data.meta, args.checkpoint,
        psnr=metrics["psnr"], ssim=metrics["ssim"], completions=args.completions,
        scale="[0, 1], hidden pixels only",
        mask={"kind": args.mask, "seed": args.mask_seed, **mask_params},
        inference={**settings.describe(), "init": "prior sample"},
        mlflow_metric=f"inpainting_mse.{args.mask}",
    )  # fmt: skip
    write_result(args.out, record)
    if args.grid:
        k = first.shape[1]
        rows = completion_rows(to_unit_range(data.images[:k]), masks[:k], first)
        save_grid(rows, args.grid, nrow=2 + first.shape[0])
    _track_result(args, record, [args.grid] if args.grid else [])
    summary = f"MSE {metrics['mse']:.5f}, PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    print(f"[lsnf] inpainting ({args.mask}) on {len(data)} images: hole {summary}")
    return 0


def cmd_eval_recover(args: argparse.Namespace) -> int:
    from lsnf.data import corruption_masks, load_split, to_unit_range
    from lsnf.metrics.grids import completion_rows, save_grid
    from lsnf.metrics.inpainting import evaluate_completion
    from lsnf.results import make_result, write_result

    model, cfg = _load_eval_model(args)
    if cfg.data.corruption.kind == "none":
        raise SystemExit(f"{args.checkpoint} was trained on complete images (data.corruption)")
    settings = _inference_settings(args, cfg)
    truth = load_split(cfg.data, "train")  # the images the model only saw corrupted
    masks = corruption_masks(cfg.data, truth)
    assert masks is not None
    n = len(truth) if args.n is None else min(args.n, len(truth))
    metrics, first = evaluate_completion(
        model, truth.images[:n], masks[:n], 1, settings.steps, settings.step_size,
        args.seed, args.batch_size, init="normal",
    )  # fmt: skip
    record = make_result(
        "recovery_mse", metrics["mse"], n, cfg, {**truth.meta, "n": n}, args.checkpoint,
        psnr=metrics["psnr"], ssim=metrics["ssim"], scale="[0, 1], hidden pixels only",
        mask=cfg.data.corruption.model_dump(mode="json"), inference=settings.describe(),
        mlflow_metric="recovery_mse",
    )  # fmt: skip
    write_result(args.out, record)
    if args.grid:
        k = first.shape[1]
        rows = completion_rows(to_unit_range(truth.images[:k]), masks[:k], first)
        save_grid(rows, args.grid, nrow=3)
    _track_result(args, record, [args.grid] if args.grid else [])
    print(f"[lsnf] recovery: hidden-pixel MSE {metrics['mse']:.5f} on {n} training images")
    return 0


def _sample_uint8(model: Any, n: int, seed: int, batch_size: int) -> Any:
    import torch

    from lsnf.metrics.fid import to_uint8

    device = next(model.parameters()).device
    rng = torch.Generator(device=device).manual_seed(seed)
    chunks = [to_uint8(model.sample(min(batch_size, n - i), rng)) for i in range(0, n, batch_size)]
    return torch.cat(chunks)


def cmd_eval_fid(args: argparse.Namespace) -> int:
    from lsnf.metrics.fid import (
        ExtractorSpec,
        extract_features,
        feature_statistics,
        frechet_distance,
        load_statistics,
    )
    from lsnf.results import make_result, write_result

    spec = ExtractorSpec.create(args.extractor, args.weights)
    ref, ref_meta = load_statistics(args.stats)
    described = spec.describe()
    if ref_meta["feature_extractor"]["weights_sha256"] != described["weights_sha256"]:
        raise SystemExit(f"{args.stats} was computed with another feature extractor; recompute it")
    model, cfg = _load_eval_model(args)
    device = str(next(model.parameters()).device)
    samples = _sample_uint8(model, args.n, args.seed, args.batch_size)
    stats = feature_statistics(extract_features(samples, spec, device))
    value = frechet_distance(stats, ref)
    record = make_result(
        "fid", value, args.n, cfg, {**ref_meta["data"], "n": ref_meta["n"]}, args.checkpoint,
        feature_extractor=described, reference=str(args.stats), samples="ancestral, seed "
        f"{args.seed}", mlflow_metric=f"fid.{spec.name}",
    )  # fmt: skip
    write_result(args.out, record)
    _track_result(args, record, [])
    print(f"[lsnf] FID {value:.3f} ({spec.name}, {args.n} samples vs {ref_meta['n']} images)")
    return 0


def cmd_eval_samples(args: argparse.Namespace) -> int:
    import torch

    from lsnf.metrics.grids import save_grid
    from lsnf.train import load_model

    model, _, _ = load_model(args.checkpoint, device=args.device)
    device = next(model.parameters()).device
    samples = model.sample(args.n, torch.Generator(device=device).manual_seed(args.seed))
    save_grid(samples, args.out, nrow=10)
    tracker = _tracker(args)
    if tracker is not None:
        tracker.log_artifacts([args.out], subdir="grids")
    return 0


def cmd_fid_stats(args: argparse.Namespace) -> int:
    from lsnf.config import load_config
    from lsnf.metrics.fid import (
        ExtractorSpec,
        extract_features,
        feature_statistics,
        save_statistics,
    )

    cfg = load_config(args.config, args.set)
    spec = ExtractorSpec.create(args.extractor, args.weights)
    data = _split(cfg, args.split, args.n)
    stats = feature_statistics(extract_features(data.images, spec, args.device))
    meta = {"data": data.meta, "n": len(data), "feature_extractor": spec.describe()}
    save_statistics(args.out, stats, meta)
    print(f"[lsnf] FID statistics of {len(data)} {data.meta['dataset']} {args.split} images")
    return 0


def cmd_train_extractor(args: argparse.Namespace) -> int:
    import torch

    from lsnf.checkpoint import atomic_write_bytes
    from lsnf.config import load_config
    from lsnf.data import load_split
    from lsnf.metrics.domain_extractor import train_domain_extractor

    cfg = load_config(args.config, [*args.set, "data.protocol=standard", "data.limit=null"])
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    n_classes = int(train.labels.max()) + 1
    state = train_domain_extractor(train, test, n_classes, epochs=args.epochs, seed=args.seed)
    atomic_write_bytes(args.out, lambda fh: torch.save(state, fh))
    print(f"[lsnf] domain extractor: test accuracy {state['test_accuracy']:.4f} on {len(test)}")
    return 0


def cmd_prepare_data(args: argparse.Namespace) -> int:
    import hashlib

    from lsnf.checkpoint import atomic_write_json
    from lsnf.config import load_config
    from lsnf.data import load_split

    cfg = load_config(args.config, args.set)
    manifest: dict[str, Any] = {"data": cfg.data.model_dump(mode="json"), "splits": {}}
    for split in ("train", "test"):
        data = load_split(cfg.data, split)
        digest = hashlib.sha256(data.images.numpy().tobytes()).hexdigest()
        manifest["splits"][split] = {**data.meta, "shape": list(data.shape),
                                     "images_sha256": digest}  # fmt: skip
    atomic_write_json(args.out, manifest)
    print(f"[lsnf] data ready: {manifest['splits']['train']['n']} train, "
          f"{manifest['splits']['test']['n']} test images")  # fmt: skip
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from lsnf.tables import write_tables

    for path in write_tables(args.results, args.reference, args.out_dir):
        print(f"[lsnf] wrote {path}")
    return 0


def cmd_track_init(args: argparse.Namespace) -> int:
    from lsnf.tracking import Tracker

    if not args.mlflow_uri:
        raise SystemExit("lsnf: error: track-init needs --mlflow-uri or $MLFLOW_TRACKING_URI")
    Tracker(
        args.mlflow_uri, args.mlflow_experiment, run_key="", failure_log=args.mlflow_failure_log
    ).init_store()
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from lsnf.curves import plot_curves

    plot_curves(args.metrics, args.out)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from lsnf.bench import run_bench

    run_bench(
        shapes=args.shapes.split(","), batch_size=args.batch_size, blocks=args.blocks,
        steps_per_block=args.steps_per_block, threads=args.threads,
    )  # fmt: skip
    return 0


_COMMANDS = {
    "train": cmd_train,
    "show-config": cmd_show_config,
    "fid-stats": cmd_fid_stats,
    "train-extractor": cmd_train_extractor,
    "bench": cmd_bench,
    "prepare-data": cmd_prepare_data,
    "tables": cmd_tables,
    "curves": cmd_curves,
    "track-init": cmd_track_init,
}
_EVAL = {
    "recon": cmd_eval_recon,
    "anomaly": cmd_eval_anomaly,
    "fid": cmd_eval_fid,
    "samples": cmd_eval_samples,
    "inpaint": cmd_eval_inpaint,
    "recover": cmd_eval_recover,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    handler = _EVAL[args.metric] if args.command == "eval" else _COMMANDS[args.command]
    from lsnf.checkpoint import CheckpointError
    from lsnf.config import ConfigError
    from lsnf.data import DataMissingError

    try:
        return handler(args)
    except (ConfigError, CheckpointError, DataMissingError, FileNotFoundError, ValueError,
            FloatingPointError) as err:  # fmt: skip
        print(f"lsnf: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
