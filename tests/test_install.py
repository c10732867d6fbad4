"""`.ci/setup-venv --torch BUILD` (docs/running.md "Installing on a cluster"): which torch build
each option installs. The CUDA 12 and CPU builds come from download.pytorch.org, which these
machines cannot reach, so the test checks the install command (``--print-torch``), not the
download."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIR = "torch==2.14.1 torchvision==0.29.1"


def setup_venv(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LSNF_TORCH")}
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "setup-venv"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the builds are x86_64's")
@pytest.mark.parametrize(
    "args, env, index",
    [
        ((), {}, None),  # today's default: PyPI's CUDA 13 build
        (("--torch", "cu13"), {}, None),
        (("--torch", "cu12"), {}, "https://download.pytorch.org/whl/cu128"),
        (("--torch=cpu",), {}, "https://download.pytorch.org/whl/cpu"),
        ((), {"LSNF_TORCH": "cpu"}, "https://download.pytorch.org/whl/cpu"),
        (
            ("--torch", "cu12"),
            {"LSNF_TORCH_INDEX": "https://download.pytorch.org/whl/cu126"},
            "https://download.pytorch.org/whl/cu126",
        ),
    ],
)
def test_each_torch_build_installs_the_same_release_from_its_index(args, env, index) -> None:
    r = setup_venv(*args, "--print-torch", **env)
    assert r.returncode == 0, r.stderr
    expected = f"pip install --index-url {index} {PAIR}" if index else f"pip install {PAIR}"
    assert r.stdout.strip() == expected


@pytest.mark.parametrize("args", [("--torch", "cu11"), ("--torhc", "cpu")])
def test_an_unknown_build_or_option_is_refused_naming_the_choices(args) -> None:
    r = setup_venv(*args, "--print-torch")
    assert r.returncode == 2 and r.stdout == ""
    assert "cu13" in r.stderr and "cu12" in r.stderr and "cpu" in r.stderr


def test_gpu_check_names_the_modules_a_bare_python_lacks(tmp_path: Path) -> None:
    """`.ci/gpu-check` on a Python without lsnf's needs and with no wheelhouse: one line naming
    what is missing and how to add it, exit 2, nothing run and no figures file written."""
    bare = tmp_path / "python"  # this interpreter without its site-packages
    bare.write_text(f'#!/bin/sh\nexec {os.path.realpath(sys.executable)} -S "$@"\n')
    bare.chmod(0o755)
    out = tmp_path / "figures.md"
    r = subprocess.run(
        ["bash", str(ROOT / ".ci" / "gpu-check"), "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": str(bare), "LSNF_WHEELHOUSE": str(tmp_path / "none")},
    )
    assert r.returncode == 2, r.stderr
    assert "lacks: torch" in r.stderr and "gpu-wheelhouse --add" in r.stderr
    assert not out.exists()


def test_results_name_the_version_and_commit_of_the_code_that_wrote_them(tmp_path: Path) -> None:
    """#28 A1: lsnf_version (one place: lsnf.__version__, read by pyproject.toml), the git commit
    of the source and whether it had uncommitted changes; (None, None) outside a checkout."""
    import shutil

    import lsnf
    from lsnf.results import source_revision, stamp

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lsnf.__version__"}
    assert lsnf.__version__ in (ROOT / "CHANGELOG.md").read_text()
    record = stamp()
    assert record["lsnf_version"] == lsnf.__version__
    if shutil.which("git") and (ROOT / ".git").exists():
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True)  # fmt: skip
        assert record["lsnf_commit"] == head.stdout.strip()
        assert record["lsnf_dirty"] is bool(status.stdout.strip())
    # a copy of the source outside any checkout: no commit to name
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "lsnf", copy / "lsnf")
    code = "from lsnf.results import source_revision; print(source_revision())"
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(copy)})  # fmt: skip
    assert r.stdout.strip() == "(None, None)", r.stderr
    assert source_revision() == (record["lsnf_commit"], record["lsnf_dirty"])
