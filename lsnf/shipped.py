"""The files lsnf ships beside its code, found in one place: the run configs
(``config/models/*.yaml``), the workflow configs (``config/config.yaml``, ``config/paper.yaml``,
``config/scenarios/``), the published numbers (``config/paper_reference.yaml``) and the workflow
itself (``workflow/``: Snakefile, rules, schemas, report templates).

In a checkout they are its own ``config/`` and ``workflow/``; in an installed wheel, the copies
that pyproject.toml maps into the package as ``lsnf/_shipped/{config,workflow}/``, with the same
relative layout (the workflow reads its default config as ``../config/config.yaml``). A wheel
built from this checkout therefore runs the same files (docs/running.md, "Installing")."""

from __future__ import annotations

from pathlib import Path

from lsnf.errors import UserError

__all__ = [
    "CHECKOUT",
    "INSTALLED",
    "describe",
    "find_run_config",
    "path",
    "root",
    "run_configs",
]

CHECKOUT = Path(__file__).resolve().parents[1]  # a clone: lsnf/, config/, workflow/ side by side
INSTALLED = Path(__file__).resolve().parent / "_shipped"  # a wheel's copies
_MARKERS = ("config/paper_reference.yaml", "workflow/Snakefile")
RUN_CONFIGS = "config/models"


def _holds(base: Path) -> bool:
    return all((base / m).is_file() for m in _MARKERS)


def root() -> Path:
    """The folder that holds the shipped ``config/`` and ``workflow/``: the checkout lsnf is
    imported from, else the installed wheel's ``lsnf/_shipped``."""
    for base in (CHECKOUT, INSTALLED):
        if _holds(base):
            return base
    raise UserError(
        f"lsnf's shipped files (config/, workflow/) are neither in its checkout ({CHECKOUT}) nor "
        f"in the installed package ({INSTALLED}): reinstall lsnf from a wheel or a full clone"
    )


def path(relative: str | Path) -> Path:
    """A shipped file by its path in a checkout, e.g. ``config/paper_reference.yaml``."""
    found = root() / relative
    if not found.exists():
        raise UserError(f"lsnf ships no {relative} (looked in {root()}); `lsnf shipped` lists them")
    return found


def run_configs() -> list[str]:
    """The names of the shipped run configs (``config/models/NAME.yaml``)."""
    return sorted(p.stem for p in (root() / RUN_CONFIGS).glob("*.yaml"))


def find_run_config(given: str) -> Path:
    """A run config named on the command line: the file itself where it exists (absolute, or
    relative to the working directory), else the shipped one at that relative path
    (``config/models/mnist_generation.yaml``) or by name (``mnist_generation``); neither is an
    error listing the shipped names."""
    p = Path(given)
    if p.is_file() or p.is_absolute():
        return p
    for candidate in (root() / p, root() / RUN_CONFIGS / f"{given}.yaml"):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"run config {given} does not exist in the working directory, and lsnf ships none by "
        f"that path or name (shipped run configs: {', '.join(run_configs())})"
    )


def describe(version: str) -> str:
    """What lsnf ``version`` ships and where (``lsnf shipped``)."""
    base = root()
    scenarios = sorted(p.name for p in (base / "config" / "scenarios").glob("*.yaml"))
    return "\n".join(
        [
            f"lsnf {version} ships these files, in {base}:",
            "  the workflow        workflow/Snakefile; from a Snakefile of your own:",
            f'                        module lsnf: snakefile: "{base / "workflow" / "Snakefile"}"',
            f"  run configs         config/models/: {', '.join(run_configs())}",
            "                        (lsnf train NAME --out DIR)",
            "  workflow configs    config/config.yaml (the default), config/paper.yaml,",
            f"                      config/scenarios/: {', '.join(scenarios)}",
            "  published numbers   config/paper_reference.yaml (lsnf tables' default --reference)",
            "  one file's path:    lsnf shipped --path config/models/mnist_generation.yaml",
        ]
    )
