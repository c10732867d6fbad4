"""A run directory: the files a training or a 2s-ABP fit writes, and how a run starts, resumes,
saves an epoch and finishes (docs/method.md §6.3, §6.7, §9.1).

- ``config.yaml`` and ``data.json``: the resolved run config and the data's provenance, written
  when the run starts;
- ``checkpoint.pt``: the whole state after the last completed epoch, which a rerun resumes from
  (one made with another config is refused, or with ``restart_if_changed`` discarded);
- ``metrics.jsonl``: a row per epoch, rewritten after each, with the wall-clock figures
  (``TIMING_KEYS``) that no checkpoint holds, so identical runs write identical ``model.pt``
  bytes; a resumed run keeps the timings of the epochs before its interruption;
- ``best.pt``: the best validation point while training runs (``train.select:
  best_validation``); ``snapshots/epoch-E.pt``: the course's snapshots;
- ``model.pt``: the trained model, written last, or the record of a model that failed to train.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lsnf import layout
from lsnf.config import RunConfig
from lsnf.errors import UserError
from lsnf.io import atomic_write_json, atomic_write_json_lines, atomic_write_text, read_json_lines
from lsnf.training.checkpoint import load_checkpoint, save_checkpoint, save_failed_model
from lsnf.training.failure import Failure

__all__ = ["TIMING_KEYS", "RunDir", "config_changes", "without_timings"]

# Wall-clock figures of an epoch: in metrics.jsonl only, never in a checkpoint
TIMING_KEYS = ("seconds", "images_per_s", "compile_s")

# Keys that may differ between a checkpoint and the config that resumes it.
# (device: the noise generator is re-seeded when its type changes; deterministic and compile change
# how, not what, is computed)
_RESUMABLE_CHANGES = {
    ("train", "epochs"),
    ("train", "progress"),
    ("device",),
    ("compile",),
    ("deterministic",),
}


def without_timings(stats: dict[str, float]) -> dict[str, float]:
    """An epoch's row without its wall-clock figures (what a checkpoint's history holds)."""
    return {k: v for k, v in stats.items() if k not in TIMING_KEYS}


def config_changes(a: dict[str, Any], b: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str]:
    """Every key in which config ``a`` (a checkpoint's) and ``b`` differ, beside those a resume
    may change, as ``key: checkpoint A vs config B``."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        path = (*prefix, key)
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_changes(va, vb, path)
        elif va != vb and path not in _RESUMABLE_CHANGES:
            out.append(f"{'.'.join(path)}: checkpoint {va!r} vs config {vb!r}")
    return out


@dataclass(frozen=True)
class RunDir:
    """The run directory ``path`` (module docstring)."""

    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / layout.CHECKPOINT

    @property
    def best(self) -> Path:
        return self.path / layout.BEST

    @property
    def model(self) -> Path:
        return self.path / layout.MODEL

    def start(self, cfg: RunConfig, data: dict[str, Any]) -> None:
        """Write the resolved run config and the data's description ``data``."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / layout.CONFIG, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        atomic_write_json(self.path / layout.DATA, data)

    def forget_snapshots(self) -> None:
        shutil.rmtree(self.path / layout.SNAPSHOTS, ignore_errors=True)

    def forget_earlier_run(self) -> None:
        """Remove what an earlier, removed or replaced run left: its best point and snapshots."""
        self.best.unlink(missing_ok=True)
        self.forget_snapshots()

    def resume(self, cfg: RunConfig, restart_if_changed: bool, map_location: Any) -> dict | None:
        """The checkpoint's state to resume from, or None to start afresh (no checkpoint, or one
        of another config discarded with ``restart_if_changed``; either way what an earlier run
        left is removed). A checkpoint of another config is otherwise refused, naming the keys."""
        if not self.checkpoint.exists():
            self.forget_earlier_run()
            return None
        state = load_checkpoint(self.checkpoint, map_location=map_location)
        diff = config_changes(state["config"], cfg.to_dict())
        if diff and restart_if_changed:
            print(
                f"[lsnf] {self.checkpoint} was made with another config "
                f"({'; '.join(diff)}); starting over",
                file=sys.stderr,
            )
            self.checkpoint.unlink()
            (self.path / layout.METRICS).unlink(missing_ok=True)
            self.forget_earlier_run()
            return None
        if diff:
            raise UserError(
                f"{self.checkpoint} was made with another config ({'; '.join(diff)}); "
                f"use another output directory, or delete the checkpoint to start over"
            )
        return state

    def with_timings(self, history: list[dict[str, float]]) -> list[dict[str, float]]:
        """A checkpoint's history with the wall-clock figures that ``metrics.jsonl`` kept for
        the same epochs."""
        timings = {
            row["epoch"]: {k: row[k] for k in TIMING_KEYS if k in row}
            for row in read_json_lines(self.path / layout.METRICS)
        }
        return [{**h, **timings.get(h["epoch"], {})} for h in history]

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        atomic_write_json_lines(self.path / layout.METRICS, rows)

    def save_epoch(self, state: dict[str, Any], history: list[dict[str, float]]) -> None:
        """The checkpoint after an epoch, then the metrics up to it."""
        save_checkpoint(self.checkpoint, state)
        self.write_metrics(history)

    def save_snapshot(self, epoch: int, state: dict[str, Any]) -> None:
        save_checkpoint(self.path / layout.snapshot(epoch), state)

    def finish(self, final: dict[str, Any]) -> None:
        """``model.pt``: the trained model's state, written last."""
        save_checkpoint(self.model, final)

    def record_failure(
        self,
        cfg: dict[str, Any],
        epoch: int,
        history: list[dict[str, float]],
        data: dict[str, Any],
        failure: Failure,
        rows: list[dict[str, float]] | None = None,
    ) -> None:
        """``model.pt`` as the record of a model that failed to train (docs/method.md §6.7):
        its config, the epochs it completed (``history``) and its data, no parameters; after
        ``metrics.jsonl`` with ``rows`` (default: ``history``, timings kept)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_metrics(history if rows is None else rows)
        save_failed_model(self.model, cfg, epoch, [without_timings(h) for h in history], data,
                          failure)  # fmt: skip
