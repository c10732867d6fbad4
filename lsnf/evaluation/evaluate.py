"""The evaluation layer: one function per evaluation (docs/method.md §7).

Each takes a trained model (:class:`lsnf.training.checkpoint.TrainedModel`) and explicit settings,
loads the data it needs, runs inference and the metric, and returns an
:class:`lsnf.evaluation.results.Outcome`: the result record, an optional grid and a summary line.
None of them writes a file or talks to MLflow; the caller (the CLI) saves and tracks the outcome.

    CLI -> evaluation (here) -> model / data -> inference -> metric -> result -> tracking
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lsnf.config import (
    DataConfig,
    EvaluationConfig,
    EvaluationSettings,
    MaskSpec,
    holds_out_a_digit,
)
from lsnf.core.batch import evaluation_batch_size
from lsnf.core.inference import (
    InferenceSettings,
    anomaly_scores,
    infer_split,
    reconstruction_errors,
    step_counts,
)
from lsnf.core.pixels import to_model_scale
from lsnf.core.sampling import sample, sample_images
from lsnf.data.splits import ImageSplit, corruption_masks, load_split
from lsnf.errors import UserError
from lsnf.evaluation.results import Grid, Outcome, make_result, stamp
from lsnf.layout import FID_ROWS
from lsnf.metrics.anomaly import auprc, auroc, reference_scores
from lsnf.metrics.grids import completion_rows, reconstruction_pairs
from lsnf.metrics.inpainting import evaluate_completion
from lsnf.metrics.trivial import mean_image_mse
from lsnf.training.checkpoint import TrainedModel

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "anomaly",
    "fid",
    "fid_floor",
    "inpainting",
    "reconstruction",
    "recovery",
    "samples",
]

ANOMALY_SCORE = "||x - g(z*)||^2 / (2 sigma^2) - log p(z*)"  # docs/method.md eq. 7.2
GRID_IMAGES = 50  # images of a reconstruction grid (10 per row, each beside its reconstruction)


def _test_images(trained: TrainedModel, ev: EvaluationConfig, split: str) -> ImageSplit:
    return load_split(trained.config.data, split).head(ev.n_test)


def reconstruction(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """Reconstruction MSE per pixel on [-1, 1] after test-time inference (docs/method.md §7.1),
    and a grid of originals beside their reconstructions."""
    model, settings = trained.model, InferenceSettings.create(trained.config, ev, trained.model)
    split = ev.split
    data = _test_images(trained, ev, split)
    stops = step_counts(settings.steps)  # the error is read along the way: K_test sensitivity
    errors = reconstruction_errors(model, data.images, settings, stops)
    mse = float(errors[settings.steps].mean())
    import pandas as pd  # here, not at the top: most evaluation jobs never need it

    examples = pd.DataFrame(
        {
            "example": np.arange(len(data)),
            "mse": errors[settings.steps].numpy(),
            **{f"mse_k{k}": e.numpy() for k, e in errors.items()},
        }
    )
    record = make_result(
        "reconstruction",
        mse,
        len(data),
        trained,
        data.describe(),
        trivial_reference={
            "of": "the mean training image",
            "value": mean_image_mse(load_split(trained.config.data, "train").images, data.images),
        },
        scale="[-1, 1] per pixel",
        inference=settings.describe(),
        mse_by_test_steps={str(k): float(e.mean()) for k, e in errors.items()},
    )
    x, zs = next(infer_split(model, data.images[:GRID_IMAGES], settings))
    with torch.no_grad():
        x_hat = model.decode(zs[settings.steps])  # (50, C, H, W)
    pairs = Grid(reconstruction_pairs(x, x_hat), nrow=10)  # originals beside reconstructions
    summary = (
        f"reconstruction MSE {mse:.5f} on {len(data)} {data.meta['dataset']} {split} "
        f"images, K_test={settings.steps}"
    )
    return Outcome(record, pairs, summary, examples)


def anomaly(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """Anomaly AUPRC of the score ``S(x)`` on the held-out-digit test split (docs/method.md
    §7.2, docs/protocols.md §2)."""
    cfg, settings = trained.config, InferenceSettings.create(trained.config, ev, trained.model)
    if cfg.data.protocol != "anomaly":
        raise UserError(f"{trained.path} was not trained with data.protocol: anomaly")
    data = _test_images(trained, ev, ev.split)
    scores = anomaly_scores(trained.model, data.images, settings)  # (N,)
    value, roc = auprc(scores, data.labels), auroc(scores, data.labels)
    unnormalised = " (EBM prior: unnormalised)" if cfg.prior.kind == "ebm" else ""
    record = make_result(
        "anomaly",
        value,
        len(data),
        trained,
        data.describe(),
        auroc=roc,
        n_anomalous=int(data.labels.sum()),
        inference=settings.describe(),
        reference_scores=reference_scores(data.images, data.labels),
        score=ANOMALY_SCORE + unnormalised,
    )
    anomalies = (
        f"held-out digit {cfg.data.held_out_digit}"
        if holds_out_a_digit(cfg.data.protocol, cfg.data.source)
        else "the folder's anomalous images"
    )
    summary = f"AUPRC {value:.4f}, AUROC {roc:.4f} ({anomalies}, n={len(data)})"
    import pandas as pd  # here, not at the top: most evaluation jobs never need it

    examples = pd.DataFrame(
        {
            "example": np.arange(len(data)),
            "label": data.labels.numpy(),
            "score": scores.double().numpy(),
            "ink": data.images.flatten(1).double().sum(1).numpy(),
        }
    )
    return Outcome(record, None, summary, examples)


def inpainting(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """Supervised inpainting: hole MSE / PSNR / SSIM of ``ev.completions`` completions per test
    image from prior samples (docs/method.md §7.4), and a grid."""
    settings = InferenceSettings.create(trained.config, ev, trained.model)
    if ev.mask is None:
        raise UserError("inpainting needs its test mask: `mask:` in its settings")
    mask = ev.mask
    data = _test_images(trained, ev, ev.split)
    masks = mask_images(mask, data)  # (N, 1, H, W)
    metrics, first, values = evaluate_completion(
        trained.model, data.images, masks, ev.completions, settings, init="prior"
    )
    record = _hole_result("inpainting", metrics, data, trained, mask, completions=ev.completions,
                          inference={**settings.describe(), "init": "prior sample"})  # fmt: skip
    grid = _completion_grid(data, masks, first)
    summary = (
        f"inpainting ({mask.tag}) on {len(data)} images: hole MSE {metrics['mse']:.5f}, "
        f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.3f}"
    )
    return Outcome(record, grid, summary, _completion_examples(values))


def recovery(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """Unsupervised recovery: error on the hidden pixels of the training images the model only
    saw corrupted, after re-inferring z (docs/method.md §7.4, docs/protocols.md §5)."""
    cfg, settings = trained.config, InferenceSettings.create(trained.config, ev, trained.model)
    if cfg.data.corruption is None:
        raise UserError(f"{trained.path} was trained on complete images (data.corruption)")
    truth = load_split(cfg.data, "train")  # the images the model only saw corrupted
    masks = corruption_masks(cfg.data, truth)
    assert masks is not None
    truth, masks = truth.head(ev.n_test), masks[: ev.n_test]
    metrics, first, values = evaluate_completion(
        trained.model, truth.images, masks, 1, settings, "normal"
    )
    record = _hole_result("recovery", metrics, truth, trained, cfg.data.corruption,
                          inference=settings.describe())  # fmt: skip
    summary = f"recovery: hidden-pixel MSE {metrics['mse']:.5f} on {len(truth)} training images"
    grid = _completion_grid(truth, masks, first)
    return Outcome(record, grid, summary, _completion_examples(values))


def _hole_result(
    evaluation: str,
    metrics: dict[str, float],
    data: ImageSplit,
    trained: TrainedModel,
    mask: MaskSpec,
    **extra: Any,
) -> dict[str, Any]:
    """The record of a hole evaluation: MSE (its value), PSNR and SSIM on the hidden pixels."""
    return make_result(evaluation, metrics["mse"], len(data), trained, data.describe(),
                       psnr=metrics["psnr"], ssim=metrics["ssim"],
                       scale="[0, 1], hidden pixels only", mask=mask.model_dump(mode="json"),
                       **extra)  # fmt: skip


def _completion_examples(values: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per image and completion: ``example, completion, mse, psnr, ssim``."""
    n, k = values["mse"].shape
    columns = {name: v.reshape(-1).double().numpy() for name, v in values.items()}  # (N*K,)
    import pandas as pd

    return pd.DataFrame(
        {"example": np.repeat(np.arange(n), k), "completion": np.tile(np.arange(k), n), **columns}
    )


def fid(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """FID, KID, precision and recall of ``ev.fid.n`` ancestral samples against the reference
    (docs/method.md §7.3), with ``ev.bootstrap`` replicates each (§9)."""
    if ev.fid is None:
        raise UserError("fid needs its reference and extractor: `fid:` in its settings")
    extractor, weights, stats, n = ev.fid.extractor, ev.fid.weights, ev.fid.stats, ev.fid.n
    spec, ref, ref_meta = _fid_reference(
        extractor, weights, stats, ev.fid.download, trained.config.data
    )
    batch_size = evaluation_batch_size(ev.batch_size, trained.model)
    images = sample_images(trained.model, n, ev.seed, batch_size)
    values, examples = _fid_of(images, spec, ref, ev, str(trained.device))
    record = make_result(
        "fid",
        values.pop("value"),
        n,
        trained,
        {**ref_meta["data"], "n": ref_meta["n"]},
        **values,
        n_reference_features=len(ref["features"]),
        data_key=ref_meta["data_key"],
        data_identity=ref_meta["identity"],
        feature_extractor=spec.describe(),
        reference=str(stats),
        samples=f"ancestral, seed {ev.seed}",
        batch_size=batch_size,
        bootstrap_replicates=ev.bootstrap,
    )
    summary = (
        f"FID {record['value']:.3f}, KID {record['kid']:.5f}, precision "
        f"{record['sample_precision']:.3f}, recall {record['sample_recall']:.3f} "
        f"({spec.name}, {n} samples vs {ref_meta['n']} images)"
    )
    return Outcome(record, None, summary, examples)


# the model-free rows beside models' FIDs (layout.FID_ROWS: row -> the images it scores): the
# images -> what the row is
FID_REFERENCE_ROWS = {
    FID_ROWS["floor"]: "floor: real held-out images",
    FID_ROWS["noise"]: "upper reference: uniform noise images",
}


def fid_floor(
    data_cfg: DataConfig,
    ev: EvaluationConfig,
    extractor: str,
    weights: str | None,
    stats: str | Path,
    n: int,
    split: str = "test",
    device: str = "cpu",
    download: bool = False,
) -> Outcome:
    """FID, KID, precision and recall of ``n`` model-free images against the same reference,
    extractor and n as a model's (docs/method.md §7.3, §9): real held-out images (``split``
    test, the floor: what "as good as the data" reads), or uniform noise images (``split``
    noise, the upper reference: what a model that learned nothing reaches). A split with fewer
    than ``n`` images gives all of them, recorded as ``n`` beside ``n_requested`` (FID is biased
    upwards at smaller n: such a floor is pessimistic, and the table shows its n)."""
    from lsnf.metrics.trivial import noise_images

    spec, ref, ref_meta = _fid_reference(extractor, weights, stats, download, data_cfg)
    if split == "noise":
        shape = tuple(load_split(data_cfg, "test").shape)
        data = ImageSplit(
            noise_images(n, shape, ev.seed),
            torch.zeros(n, dtype=torch.long),
            {
                "dataset": ref_meta["data"]["dataset"],
                "source": "uniform noise",
                "split": "noise",
                "seed": ev.seed,
                "n": n,
            },
        )
    else:
        data = load_split(data_cfg, split).head(n)
    values, examples = _fid_of(data.images, spec, ref, ev, device)
    record = {
        "evaluation": "fid",
        "floor": f"{FID_REFERENCE_ROWS.get(split, 'real images')}, model-free",
        **values,
        "n": len(data),
        "n_requested": n,
        "dataset": data.meta["dataset"],
        "data_key": data_cfg.key,
        "data_identity": data_cfg.identity(),
        "data": data.describe(),
        "reference_data": {**ref_meta["data"], "n": ref_meta["n"]},
        "feature_extractor": spec.describe(),
        "reference": str(stats),
        "samples": f"{n} uniform noise images, seed {ev.seed}"
        if split == "noise"
        else f"the first {n} real {split} images",
        "bootstrap_replicates": ev.bootstrap,
        **stamp(),
    }
    summary = (
        f"FID {values['value']:.3f}, KID {values['kid']:.5f} ({spec.name}, {len(data)} "
        f"{split} images vs {ref_meta['n']})"
        + (f"; only {len(data)} of the {n} asked for: biased upwards" if len(data) < n else "")
    )
    return Outcome(record, None, summary, examples)


def _fid_reference(
    extractor: str, weights: str | None, stats: str | Path, download: bool, data_cfg: DataConfig
) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """The extractor and the reference statistics, which must come from that extractor and from
    the images of ``data_cfg`` (same :meth:`~lsnf.config.DataConfig.identity`): a model's FID
    is against its own data, never another experiment's split (docs/protocols.md §6)."""
    from lsnf.metrics.fid import ExtractorSpec, load_statistics

    spec = ExtractorSpec.create(extractor, weights, download)
    ref, ref_meta = load_statistics(stats)
    if ref_meta["feature_extractor"]["weights_sha256"] != spec.describe()["weights_sha256"]:
        raise UserError(f"{stats} was computed with another feature extractor; recompute it")
    if ref_meta.get("identity") != data_cfg.identity():
        raise UserError(
            f"{stats} holds statistics of other images (data {ref_meta.get('data_key')!r}) than "
            f"the data of this FID ({data_cfg.key!r}); compute the reference of this data with "
            f"`lsnf fid-stats` on the same run config"
        )
    return spec, ref, ref_meta


def _fid_of(
    images_u8: torch.Tensor,
    spec: Any,
    ref: dict[str, np.ndarray],
    ev: EvaluationConfig,
    device: str,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """FID (``value``), KID, precision and recall of uint8 images (n, C, H, W) against ``ref``
    (docs/method.md §7.3), and their arrays: the images' feature mean and covariance and
    ``ev.bootstrap`` bootstrap replicates of each. FID, KID and precision resample the images
    (the same resamples); recall resamples the reference images it is the share of. Precision
    and recall compare with the first n reference images (equal sets, as their k-NN radii
    assume), KID with every stored reference feature."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    from lsnf.metrics.fid import (
        bootstrap_fid,
        extract_features,
        feature_statistics,
        frechet_distance,
    )
    from lsnf.metrics.sample_quality import PRC_NEIGHBORHOOD, kid_replicates, precision_recall_hits
    from lsnf.metrics.stats import resample_weights

    features = extract_features(images_u8, spec, device)  # (n, F)
    n = features.shape[0]
    own = feature_statistics(features)
    real = torch.from_numpy(ref["features"])  # (m, F)
    weights = resample_weights(n, ev.bootstrap, ev.seed)  # (B, n), as bootstrap_fid's
    kids = kid_replicates(features, real, np.vstack([np.ones((1, n)), weights]))  # (1 + B,)
    prc = prc_features_to_metric(
        features, real[:n], prc_neighborhood=PRC_NEIGHBORHOOD, save_cpu_ram=False, verbose=False
    )  # generated first, then real
    hits_p, hits_r = precision_recall_hits(features, real[:n])  # (n,), (min(n, m),)
    values = {
        "value": frechet_distance(own, ref),
        "kid": float(kids[0]),
        "sample_precision": float(prc["precision"]),  # not "precision": the arithmetic's
        "sample_recall": float(prc["recall"]),
    }
    arrays = {
        "mu": own["mu"],
        "sigma": own["sigma"],
        "bootstrap_fid": bootstrap_fid(features, ref, ev.bootstrap, ev.seed),  # (B,)
        "bootstrap_kid": kids[1:],  # (B,)
        "bootstrap_precision": weights @ hits_p / n,  # (B,)
        "bootstrap_recall": resample_weights(len(hits_r), ev.bootstrap, ev.seed)
        @ hits_r
        / len(hits_r),  # (B,) over the reference images
    }
    return values, arrays


def samples(trained: TrainedModel, ev: EvaluationSettings) -> Outcome:
    """A grid of ``ev.grid_samples`` ancestral samples (docs/method.md §1)."""
    images = sample(trained.model, ev.grid_samples, ev.seed, ev.grid_samples)  # (n, C, H, W)
    return Outcome(None, Grid(images, nrow=10), f"{ev.grid_samples} samples")


def mask_images(mask: MaskSpec, data: ImageSplit) -> torch.Tensor:
    """The masks (N, 1, H, W) of setting ``mask`` for every image of ``data``."""
    from lsnf.core.masks import make_masks

    return make_masks(mask, len(data), data.shape[1])


def _completion_grid(data: ImageSplit, masks: torch.Tensor, first: torch.Tensor) -> Grid:
    """Rows of truth | masked | completions for the first batch's images."""
    k = first.shape[1]
    rows = completion_rows(to_model_scale(data.images[:k]), masks[:k], first)
    return Grid(rows, nrow=2 + first.shape[0])
