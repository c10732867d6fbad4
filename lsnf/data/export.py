"""A configured dataset written as a folder of PNG files, in the layout that
``data.source: folder`` reads (docs/protocols.md §10): ``lsnf export-folder``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image

from lsnf.config import DataConfig
from lsnf.data.splits import ImageSplit, load_split
from lsnf.errors import UserError

__all__ = ["write_folder"]


def write_folder(cfg: DataConfig, out: Path, n: int | None = None) -> dict[str, int]:
    """Write ``cfg``'s train and test splits (the training split whole: validation images
    included) as PNG files in the layout lsnf.data.folder reads with ``split: given``:
    ``out/train/`` and ``out/test/``, each with one sub-folder per class (``labels: classes``)
    or, under the anomaly protocol, ``normal/`` and ``anomalous/`` (``labels: folders``). At
    most ``n`` images per split (drawn at random, seed 0). The folder appears whole or not at
    all: it is written beside ``out`` and renamed. Returns the image count per split."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} exists; name a new folder (nothing there is overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    whole = cfg.model_copy(update={"validation_fraction": 0.0, "limit": None, "corruption": None})
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    counts = {}
    try:
        for split in ("train", "test"):
            data = load_split(whole, split)
            if n is not None and n < len(data):  # n drawn at random (seed 0), in their order
                pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
                keep = pick[:n].sort().values  # (n,)
                data = ImageSplit(data.images[keep], data.labels[keep], data.meta)
            for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
                sub = tmp / split
                if cfg.protocol == "anomaly":
                    sub = sub / ("anomalous" if split == "test" and int(label) else "normal")
                else:  # one sub-folder per class (data.folder.labels: classes)
                    sub = sub / str(int(label))
                sub.mkdir(parents=True, exist_ok=True)
                pixels = image.permute(1, 2, 0).squeeze(2).numpy()  # (H, W) or (H, W, 3)
                Image.fromarray(pixels).save(sub / f"{i:05d}.png")
            counts[split] = len(data)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
