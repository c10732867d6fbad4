"""A model that fails to train is a result of the benchmark, not a crash (docs/method.md §6.7).

Training whose loss or posterior latents become non-finite stops with :class:`TrainingFailed`.
Under ``--record-failure`` (what the workflow passes) its ``model.pt`` then records the
:class:`Failure` instead of parameters; every evaluation of it writes a failed result, and the
tables and the comparison say "failed to train: NAME (reason at epoch e)" where its numbers
would be. A job that is killed, or runs out of memory, is not a failure of the model: it stays
a job failure, which a rerun resumes (§6.3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lsnf.errors import UserError

__all__ = ["FailedModelError", "Failure", "TrainingFailed"]


@dataclass(frozen=True)
class Failure:
    """Why and when a model failed to train: ``reason`` ("non-finite generator loss"), the
    epoch it happened in and the learning iteration (counted from the start of training);
    None where the failure belongs to no epoch (a 2s-ABP fit whose ABP model failed)."""

    reason: str
    epoch: int | None = None
    iteration: int | None = None

    def text(self) -> str:
        """ "non-finite generator loss at epoch 3, learning iteration 97"."""
        if self.epoch is None:
            return self.reason
        at = f" at epoch {self.epoch}"
        return (
            self.reason + at + ("" if self.iteration is None else f", iteration {self.iteration}")
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Failure:
        return cls(record["reason"], record.get("epoch"), record.get("iteration"))


class TrainingFailed(UserError, FloatingPointError):
    """Training (or a 2s-ABP fit) cannot go on: the loss or the latents are not finite. Its
    :attr:`failure` is what ``--record-failure`` writes into ``model.pt``."""

    def __init__(self, message: str, failure: Failure) -> None:
        super().__init__(message)
        self.failure = failure


class FailedModelError(UserError):
    """A ``model.pt`` that records a failure to train was asked for its parameters."""
