"""Files written atomically, and their hashes.

Every output lsnf writes (checkpoints, results, grids, tables, statistics) goes through
:func:`atomic_write_bytes`: the bytes go to a temporary file in the target's directory, are
flushed to disk and renamed into place, so a killed job never leaves a half-written file under
the real name. Files that belong together (the tables) go through :func:`atomic_folder`, which
publishes them only once every one is written. A file gets the mode an ordinary ``open()`` would
give it (0644 under umask 022, 0664 under 002), so team mates on a shared filesystem can read
results. No torch here: the callers pass a ``write(fileobj)`` function.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_folder",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_json_lines",
    "atomic_write_text",
    "read_json",
    "sha256",
]


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; open() would honour the umask
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Write a set of files into the folder ``path`` all or none: the block writes into an empty
    staging folder beside it; when the block ends without an error, each staged file replaces
    its namesake in ``path`` (by rename; files of ``path`` not staged are kept), and when it
    raises, ``path`` is left as it was and the staging folder is removed."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
        yield staging
        for src in sorted(p for p in staging.rglob("*") if p.is_file()):
            dest = path / src.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    data = text.encode()
    atomic_write_bytes(path, lambda fh: fh.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_json_lines(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically (training curves)."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_json_lines(path: str | Path) -> list[Any]:
    """The JSON values of a JSON-lines file, one per non-empty line ([] if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_json(path: str | Path) -> Any:
    """Parse a JSON file."""
    return json.loads(Path(path).read_text())


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint or weights behind every result)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
