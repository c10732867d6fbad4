"""`.ci/setup-venv --torch BUILD` (docs/running.md "Installing on a cluster"): which torch build
each option installs. The CUDA 12 and CPU builds come from download.pytorch.org, which these
machines cannot reach, so the test checks the install command (``--print-torch``), not the
download."""

from __future__ import annotations

import os
import platform
import shutil
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

    import lsnf
    from lsnf.evaluation.results import source_revision, stamp

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
    code = "from lsnf.evaluation.results import source_revision; print(source_revision())"
    r = subprocess.run([sys.executable, "-c", code], cwd=copy, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(copy)})  # fmt: skip
    assert r.stdout.strip() == "(None, None)", r.stderr
    assert source_revision() == (record["lsnf_commit"], record["lsnf_dirty"])


def _source_tree(dest: Path) -> Path:
    """The checkout's source as a user's clone has it (tracked and untracked-but-not-ignored
    files; no .venv, results or data), so building never writes into this checkout."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.workflow
@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the checkout's file list (git)")
def test_the_wheel_runs_lsnf_outside_the_repository(tmp_path: Path) -> None:
    """#28 A1: `python -m build` makes an sdist and, from it, a wheel that holds every module of
    lsnf and every file of config/ and workflow/ (lsnf/_shipped/). Installed into a fresh venv
    outside the repository (its dependencies from this environment, on a .pth line), that lsnf
    is the wheel's: `lsnf --help` and `lsnf shipped` run, a shipped run config trains one epoch
    by its name, and the shipped workflow plans the tiny scenario as a Snakemake module."""
    import sysconfig
    import zipfile

    import yaml

    src = _source_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)]
    r = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (wheel,) = dist.glob("lsnf-*.whl")
    (sdist,) = dist.glob("lsnf-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(src).as_posix() for p in (src / "lsnf").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    data = {
        f"lsnf/_shipped/{p.relative_to(src).as_posix()}"
        for top in ("config", "workflow")
        for p in (src / top).rglob("*")
        if p.is_file()
    }
    assert data <= names, sorted(data - names)
    assert sdist.stat().st_size > 0

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    py = env / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(site, "lsnf_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index"]
    r = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*cmd: str | Path, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(c) for c in cmd], cwd=cwd, env=environ, capture_output=True,
                              text=True, timeout=600)  # fmt: skip

    where = run(py, "-c", "import lsnf, lsnf.shipped as s; print(lsnf.__file__, s.root())")
    assert where.stdout.startswith(site) and "_shipped" in where.stdout, where.stdout + where.stderr
    lsnf_bin = env / "bin" / "lsnf"
    assert run(lsnf_bin, "--help").returncode == 0
    shipped = run(lsnf_bin, "shipped")
    assert shipped.returncode == 0 and "mnist_generation" in shipped.stdout, shipped.stderr
    tiny = ["data.limit=120", "model.ngf=4", "model.latent_dim=4", "prior.flow.hidden=8",
            "inference.steps=2", "train.epochs=1", "train.validation_n=20",
            "train.validation_steps=2", "train.progress=false"]  # fmt: skip
    sets = [a for s in tiny for a in ("--set", s)]
    r = run(lsnf_bin, "train", "mnist_generation", "--out", "run", *sets)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (work / "run" / "model.pt").is_file()

    snakefile = run(lsnf_bin, "shipped", "--path", "workflow/Snakefile").stdout.strip()
    assert snakefile.startswith(site)
    scenario = run(lsnf_bin, "shipped", "--path", "config/scenarios/tiny.yaml").stdout.strip()
    cfg = yaml.safe_load(Path(scenario).read_text())
    cfg["experiments"] = {"tiny_anomaly": cfg["experiments"]["tiny_anomaly"]}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    (work / "Snakefile").write_text(
        f'configfile: "config.yaml"\n\n\nmodule lsnf:\n    snakefile:\n        "{snakefile}"\n'
        "    config:\n        config\n\n\nuse rule * from lsnf\n"
    )
    r = run(py, "-m", "snakemake", "--dry-run", "--cores", "1")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "rule train:" in r.stdout and "rule tables:" in r.stdout, r.stdout[-3000:]
