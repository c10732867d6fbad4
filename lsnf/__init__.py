"""lsnf: latent-space normalizing-flow prior models (Xie et al., AAAI 2023) and their baselines.

Submodules are imported on use (``lsnf.core.flow``, ``lsnf.training.train``, ...), so ``import
lsnf`` and the CLI's ``--help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from lsnf.api import Model

__version__ = "0.2.0"  # the one place of the version (pyproject.toml reads it); CHANGELOG.md
__all__ = ["__version__", "load"]


def __getattr__(name: str) -> object:
    """A submodule on first use (``lsnf.api.Model`` after a bare ``import lsnf``)."""
    import importlib
    import importlib.util

    if name.startswith("_") or importlib.util.find_spec(f"lsnf.{name}") is None:
        raise AttributeError(f"module 'lsnf' has no attribute {name!r}")
    return importlib.import_module(f"lsnf.{name}")


def load(path: str | Path, device: str | None = None) -> Model:
    """A trained model as a Python object (:class:`lsnf.api.Model`: sample, encode, decode,
    score, complete, log_prior); docs/usage.md "In Python"."""
    from lsnf.api import load as load_model

    return load_model(path, device)
