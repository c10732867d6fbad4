"""lsnf: latent-space normalizing-flow prior models (Xie et al., AAAI 2023) and their baselines.

Submodules are imported on use (``lsnf.flow``, ``lsnf.train``, ...), so ``import lsnf`` and the
CLI's ``--help`` stay fast.
"""

__version__ = "0.1.0"
