"""A trained model on new images: ``lsnf score``, ``sample``, ``reconstruct`` and ``inpaint``
(docs/usage.md, "Your own images"). Each is a thin layer over :class:`lsnf.api.Model`, whose methods
are the evaluation layer's code, so a score here is ``lsnf eval anomaly``'s for the same
image, settings and seed.

Images are read like the folder data source reads them (:func:`lsnf.data.folder.read_images`:
one file, a folder or an ``.npz``; checked, resized by ``--resize`` to the model's shape).
Images are written as one PNG grid (an ``--out`` ending in ``.png``) or as one PNG per image in
a new folder, which appears whole or not at all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lsnf import layout
from lsnf.api import Model
from lsnf.config import FolderConfig, MaskSpec
from lsnf.core.inference import scores_and_errors
from lsnf.core.pixels import from_unit_interval, to_model_scale, to_uint8, to_unit_interval
from lsnf.data.folder import ChannelError, read_images
from lsnf.errors import UserError
from lsnf.io import atomic_write_bytes
from lsnf.metrics.grids import completion_rows, reconstruction_pairs, save_grid

__all__ = [
    "completion_grid",
    "images_for",
    "load_mask",
    "reconstruction_grid",
    "score_images",
    "write_images",
    "write_scores",
]

SCORES_METADATA_KEY = b"lsnf"  # the parquet schema metadata key of `lsnf score`'s settings


def images_for(model: Model, path: str | Path, resize: str = "none") -> tuple[list[str], Tensor]:
    """Names and uint8 images (N, C, H, W) at ``path``, in ``model``'s shape (``resize``:
    none, center_crop or stretch; docs/protocols.md §10)."""
    c, h, _ = model.image_shape
    policy = FolderConfig(image_size=h, channels=c, resize=resize)  # type: ignore[arg-type]
    try:
        return read_images(path, policy)
    except ChannelError as err:
        kinds = {1: "grayscale", 3: "colour (RGB)"}
        raise UserError(
            f"{err.name}: a {kinds[err.found]} image, but this model was trained on "
            f"{kinds[c]} images ({c} channel{'s' * (c > 1)}): convert the images to "
            f"{kinds[c].split()[0]}, or use a model trained on {kinds[err.found]} ones"
        ) from None


def workflow_test_steps(model_path: str | Path) -> tuple[int, Path] | None:
    """K_test of the anomaly evaluation the workflow ran on the model at ``model_path``
    (``results/models/EXP/RUN/model.pt``: ``results/settings/EXP/anomaly.yaml``'s
    ``test_steps``) and that file; None for a model outside a workflow's results."""
    import yaml

    model_path = Path(model_path)
    key = layout.run_key_in(str(model_path))
    if key is None or model_path.name != layout.MODEL:
        return None
    root = str(model_path.parents[3])  # results/ of results/models/EXP/RUN/model.pt
    settings = Path(layout.eval_settings(key.split("/")[0], "anomaly", root))
    if not settings.is_file():
        return None
    return int(yaml.safe_load(settings.read_text())["test_steps"]), settings


def score_images(
    model: Model, path: str | Path, steps: int | None, seed: int, resize: str = "none"
) -> tuple[Any, dict[str, Any]]:
    """Per image: the anomaly score ``S(x)`` (docs/method.md eq. 7.2, higher = more anomalous)
    and the reconstruction error per pixel on [-1, 1] (§7.1) at the same ``z*``; and what
    produced them (model, inference settings, images). Returns (DataFrame, settings)."""
    import pandas as pd

    from lsnf.evaluation.evaluate import ANOMALY_SCORE
    from lsnf.evaluation.results import stamp

    names, images = images_for(model, path, resize)
    settings = model.inference_settings(steps, seed)
    scores, errors = scores_and_errors(model.network, images, settings)  # (N,), (N,)
    table = pd.DataFrame(
        {"file": names, "score": scores.double().numpy(), "mse": errors.double().numpy()}
    )
    trained = model.trained
    meta = {
        "score": ANOMALY_SCORE + (" (EBM prior: unnormalised)" if model.prior == "ebm" else ""),
        "mse": "mean squared error per pixel on [-1, 1] of g(z*)",
        "inference": settings.describe(),
        "images": {"path": str(path), "n": len(names), "resize": resize},
        "checkpoint": str(trained.path),
        "checkpoint_sha256": trained.sha256,
        "prior": trained.config.model_kind,
        "dataset": trained.config.data.name,
        **stamp(),
    }
    return table, meta


def write_scores(table: Any, meta: dict[str, Any], out: str | Path) -> None:
    """``table`` as Parquet with ``meta`` as JSON in its schema metadata (key ``lsnf``),
    written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), SCORES_METADATA_KEY: json.dumps(meta).encode()}
    )
    atomic_write_bytes(out, lambda fh: pq.write_table(arrow, fh))


def load_mask(spec: str, shape: tuple[int, int, int], n: int) -> Tensor:
    """Masks (n, 1, H, W), 1 = observed: a mask tag of docs/method.md §7.5 (``center``,
    ``sp50``, ``sq16``, ...) or a PNG file of the image's size (white = observed)."""
    _, h, w = shape
    path = Path(spec)
    if path.suffix.lower() == ".png":
        if not path.is_file():
            raise UserError(f"--mask {spec}: no such file")
        from PIL import Image

        with Image.open(path) as img:
            m = torch.from_numpy(np.asarray(img.convert("L"))) > 127  # (H, W)
        if tuple(m.shape) != (h, w):
            raise UserError(f"--mask {spec}: {tuple(m.shape)} pixels, the model's are {(h, w)}")
        return m.float().expand(n, 1, h, w)
    from lsnf.config import ConfigError
    from lsnf.core.masks import make_masks

    try:
        mask = MaskSpec.from_tag(spec)
    except ConfigError as err:
        raise UserError(f"--mask: {err}, or a PNG file (white = observed)") from None
    return make_masks(mask, n, h)


def write_images(images: Tensor, names: list[str], out: str | Path, nrow: int = 10) -> None:
    """Images (N, C, H, W) in [0, 1]: one PNG grid when ``out`` ends in ``.png``, else one PNG
    per image (``names``, relative paths) in the new folder ``out``."""
    out = Path(out)
    if out.suffix.lower() == ".png":
        save_grid(from_unit_interval(images), out, nrow=nrow)
        return
    if out.exists():
        raise UserError(f"{out} exists; name a new folder (nothing there is overwritten)")
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        pixels = to_uint8(from_unit_interval(images))  # (N, C, H, W)
        for name, image in zip(names, pixels, strict=True):
            target = (tmp / name).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).squeeze(2).numpy()).save(target)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def reconstruction_grid(images_u8: Tensor, rebuilt: Tensor) -> Tensor:
    """Originals beside their reconstructions, (2N, C, H, W) in [0, 1]."""
    return reconstruction_pairs(to_unit_interval(to_model_scale(images_u8)), rebuilt)


def completion_grid(images_u8: Tensor, masks: Tensor, completions: Tensor) -> Tensor:
    """Rows of original | masked | completions, in [0, 1] (``nrow`` = 2 + completions)."""
    n = images_u8.shape[0]
    x = to_unit_interval(to_model_scale(images_u8))  # (N, C, H, W) in [0, 1]
    return completion_rows(x, masks, completions, n_images=n)
