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


def test_a_folder_is_published_all_or_none(tmp_path) -> None:
    from lsnf.io import atomic_folder

    out = tmp_path / "tables"
    out.mkdir()
    (out / "a.csv").write_text("old")
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(RuntimeError), atomic_folder(out) as staging:
        (staging / "a.csv").write_text("new")
        (staging / "b.csv").write_text("new")
        raise RuntimeError("a refused result")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "notes.txt"]
    assert (out / "a.csv").read_text() == "old"
    with atomic_folder(out) as staging:
        (staging / "a.csv").write_text("new")
        (staging / "sub").mkdir()
        (staging / "sub/b.csv").write_text("new")
    assert (out / "a.csv").read_text() == (out / "sub/b.csv").read_text() == "new"
    assert (out / "notes.txt").read_text() == "the user's"  # files not staged are kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tables"]  # no staging folder left
