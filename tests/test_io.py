"""Atomic writes (lsnf/io.py): nothing half-written under the real name, and the file mode an
ordinary open() gives, so team mates on a shared filesystem can read results."""

from __future__ import annotations

import os
import stat

import pytest

from lsnf.io import atomic_write_bytes, atomic_write_json, read_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
        with open(tmp_path / "plain", "w"):  # what an ordinary open() gives
            pass
    finally:
        os.umask(old)
    got = stat.S_IMODE((tmp_path / "r.json").stat().st_mode)
    assert got == mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert read_json(tmp_path / "r.json") == {"a": 1}


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path) -> None:
    atomic_write_json(tmp_path / "r.json", {"old": True})

    def fail(fh) -> None:
        fh.write(b"{half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(tmp_path / "r.json", fail)
    assert read_json(tmp_path / "r.json") == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
