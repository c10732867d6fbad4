"""lsnf: latent-space normalizing-flow prior models (Xie et al., AAAI 2023) and their baselines.

Submodules are imported on use (``lsnf.flow``, ``lsnf.train``, ...), so ``import lsnf`` and the
CLI's ``--help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from lsnf.api import Model

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(path: str | Path, device: str | None = None) -> Model:
    """A trained model as a Python object (:class:`lsnf.api.Model`: sample, encode, decode,
    score, complete, log_prior); README "In Python"."""
    from lsnf.api import load as load_model

    return load_model(path, device)
