"""Self-describing checkpoints: written atomically, loaded safely, rebuilt into models.

A checkpoint holds model, optimiser and scheduler states, RNG states, the resolved config, the
epoch and the training history, tagged ``format: lsnf-checkpoint-1`` (docs/method.md §6.3). It
is written through :func:`lsnf.io.atomic_write_bytes`, so a killed job never leaves a
half-written checkpoint under the real name. Loading uses ``weights_only=True``; a corrupt or
truncated file, or one of another format, is an error naming the file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lsnf.config import RunConfig, config_from_dict
from lsnf.core.model import LatentModel, build_model
from lsnf.errors import MissingFileError, UserError
from lsnf.hardware import setup_device
from lsnf.io import atomic_write_bytes, sha256
from lsnf.training.failure import FailedModelError, Failure

__all__ = [
    "FORMAT",
    "CheckpointError",
    "FailedModel",
    "TrainedModel",
    "failed_model",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "save_failed_model",
    "training_summary",
]

FORMAT = "lsnf-checkpoint-1"


class CheckpointError(UserError):
    """A checkpoint cannot be read; the message names the file."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a state dict of tensors and plain Python values, tagged
    with :data:`FORMAT`, in a canonical form: equal states give equal bytes (a resumed run's
    ``model.pt`` is the uninterrupted run's, docs/method.md §6.3)."""
    tagged = _canonical({**state, "format": FORMAT})
    atomic_write_bytes(path, lambda fh: torch.save(tagged, fh))


def _canonical(obj: Any) -> Any:
    """``obj`` with every string interned, so that pickle, which writes an object seen before as
    a reference to it, writes equal states alike: the optimizers' keys are the same string
    objects in a fresh run, but separate copies in one resumed from a checkpoint. Dicts keep
    their type and the ``_metadata`` a module's state dict carries."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        out = type(obj)((_canonical(k), _canonical(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = _canonical(obj._metadata)  # type: ignore[attr-defined]
        return out
    if type(obj) in (list, tuple):  # not a subclass (torch.Size, a namedtuple): kept as is
        return type(obj)(_canonical(v) for v in obj)
    return obj


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; raise :class:`CheckpointError` if unreadable or not an
    lsnf checkpoint of this format."""
    path = Path(path)
    retrain = "rerun the workflow (snakemake) or `lsnf train` to train it again"
    if not path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist: {retrain}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/truncated files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); restore it, or delete it and "
            f"{retrain}"
        ) from None
    if not isinstance(state, dict) or "config" not in state or not {"model", "failed"} & set(state):
        raise CheckpointError(f"{str(path)!r} is not an lsnf checkpoint (no model/config entries)")
    if state.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint format {state.get('format')!r}, but this lsnf reads "
            f"{FORMAT!r}; retrain it with this version (delete its run directory)"
        )
    return state


@dataclass(frozen=True)
class FailedModel:
    """The record of a model that failed to train (docs/method.md §6.7): what identifies it, as
    :class:`TrainedModel` does, and its :class:`~lsnf.training.failure.Failure` instead of
    parameters."""

    config: RunConfig
    path: Path
    sha256: str
    training: dict[str, Any]
    failure: Failure
    data: dict[str, Any]  # its training data's record (data.json's)


def save_failed_model(
    path: str | Path,
    config: dict[str, Any],
    epoch: int,
    history: list[dict[str, Any]],
    data: dict[str, Any],
    failure: Failure,
) -> None:
    """Write ``model.pt`` as the record of a model that failed to train (docs/method.md §6.7):
    its config, the epochs it completed and their history, its data's record and the failure,
    no parameters (:func:`failed_model` reads it back)."""
    state = {"config": config, "epoch": epoch, "history": history, "data": data,
             "failed": failure.to_dict()}  # fmt: skip
    save_checkpoint(path, state)
    print(f"[lsnf] failed to train: {failure.text()}; recorded in {path}", file=sys.stderr)


def failed_model(path: str | Path) -> FailedModel | None:
    """The failure that the ``model.pt`` at ``path`` records, or None for a trained model."""
    state = load_checkpoint(path)
    if "failed" not in state:
        return None
    cfg = config_from_dict(state["config"], origin=str(path))
    failure = Failure.from_dict(state["failed"])
    summary = training_summary(state)
    return FailedModel(cfg, Path(path), sha256(path), summary, failure, state.get("data", {}))


@dataclass(frozen=True)
class TrainedModel:
    """A model rebuilt from a checkpoint, in eval mode, with what identifies it."""

    model: LatentModel
    config: RunConfig
    path: Path
    sha256: str
    training: dict[str, Any] = field(default_factory=dict)  # training_summary of its state

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_model(
    path: str | Path, device: str | None = None, data_root: str | None = None
) -> TrainedModel:
    """Rebuild a trained model from ``path`` on ``device`` (default: its config's), optionally
    reading its data from another ``data_root``."""
    state = load_checkpoint(path)
    if "failed" in state:
        raise FailedModelError(
            f"{path} records a model that failed to train ({state['failed']['text']}): it has no "
            f"parameters. Retrain it with a lower learning rate or Langevin step size "
            f"(docs/method.md §6.7)"
        )
    cfg = config_from_dict(state["config"], origin=str(path))
    if data_root is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": data_root})})
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    target = setup_device(cfg, device)
    model = model.to(target).eval()
    return TrainedModel(model, cfg, Path(path), sha256(path), training_summary(state))


def training_summary(state: dict[str, Any]) -> dict[str, Any]:
    """How a checkpoint's model was trained, as every result records it: epochs and learning
    iterations done, which parameters it holds (``selected``) and its convergence status
    (docs/method.md §6.5; absent when it had no validation curves)."""
    done = [h for h in state.get("history", []) if h.get("epoch", 0) > 0]
    return {
        "epochs": len(done),
        "iterations": int(done[-1].get("iteration", 0)) if done else 0,
        "selected": state.get("selected", {"by": "last epoch", "epoch": state.get("epoch")}),
        "convergence": state.get("convergence"),
    }
