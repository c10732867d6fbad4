"""Self-describing checkpoints, written atomically and loaded safely.

A checkpoint holds model, optimiser and scheduler states, RNG states, the resolved config and
the epoch. It is written to a temporary file in the same directory and renamed into place, so
a killed job never leaves a half-written checkpoint under the real name. Loading uses
``weights_only=True``; a corrupt or truncated file is an error naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_json_lines",
    "load_checkpoint",
    "save_checkpoint",
    "sha256",
]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read; the message names the file."""


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def atomic_write_json_lines(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically (training curves)."""
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a state dict of tensors and plain Python values."""
    atomic_write_bytes(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``; raise :class:`CheckpointError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/truncated files
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); delete it to retrain, or restore it"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{str(path)!r} is not an lsnf checkpoint (no model/config entries)")
    return state


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint behind every result)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
