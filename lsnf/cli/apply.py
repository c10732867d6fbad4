"""``lsnf score``, ``sample``, ``reconstruct`` and ``inpaint``: a trained model on new images
(:mod:`lsnf.apply`, through ``lsnf.load``)."""

from __future__ import annotations

import argparse
from typing import Any

from lsnf.cli.options import command, device_option

__all__ = ["add_commands"]

IMAGES = "an image, a folder of PNG/JPEG images or an .npz (docs/protocols.md §10)"


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


def _common(p: argparse.ArgumentParser, takes_images: bool = True) -> None:
    p.add_argument("model", help="a model.pt that lsnf train wrote")
    if takes_images:
        p.add_argument("images", help=IMAGES)
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
    device_option(p, None, "the run config's")


def add_commands(sub: Any) -> None:
    p = command(
        sub,
        "score",
        cmd_score,
        "per-image anomaly score S(x) and reconstruction error of new images (as eval anomaly)",
    )
    _common(p)
    p.add_argument("--out", required=True, help="Parquet file (file, score, mse; settings)")
    p = command(sub, "sample", cmd_sample, "ancestral samples of a trained model")
    _common(p, takes_images=False)
    p.add_argument("-n", type=int, required=True, help="how many")
    p.add_argument("--out", required=True, help="grid.png, or a new folder (one PNG each)")
    p = command(sub, "reconstruct", cmd_reconstruct, "g(z*) of new images (test-time inference)")
    _common(p)
    p.add_argument("--out", required=True, help="grid.png (beside originals), or a new folder")
    p = command(
        sub, "inpaint", cmd_inpaint, "fill the hidden pixels of new images (as eval inpainting)"
    )
    _common(p)
    p.add_argument(
        "--mask", required=True, help="a mask tag (center, sp50, sq16: docs/method.md §7.5) or "
        "a PNG of the image size, white = observed"
    )  # fmt: skip
    p.add_argument("--completions", type=int, default=1, help="completions per image")
    p.add_argument("--out", required=True, help="grid.png (rows), or a new folder")
