"""Run ids: the name of one model in paths (``results/models/{experiment}/{run id}``), in MLflow
(``lsnf.run_key`` = ``{experiment}/{run id}``) and in every result's ``identity``.

``{prior}-seed{seed}``, ``{prior}-digit{d}-seed{seed}`` (anomaly) or ``{prior}-{mask}-seed{seed}``
(recovery; mask tags of :class:`lsnf.config.MaskSpec`: ``center``, ``sp30``, ``sq32``). The prior
names and mask tags come from :mod:`lsnf.config`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsnf.config import MASK_TAG_PATTERN, MODEL_KINDS

__all__ = ["RUN_PATTERN", "Run", "parse_run", "run_key"]

_PRIORS = "|".join(MODEL_KINDS)
RUN_PATTERN = rf"({_PRIORS})(-digit[0-9]|-(?:{MASK_TAG_PATTERN}))?-seed[0-9]+"
_RUN_RE = re.compile(
    rf"^(?P<prior>{_PRIORS})(-digit(?P<digit>[0-9])|-(?P<mask>{MASK_TAG_PATTERN}))?"
    rf"-seed(?P<seed>[0-9]+)$"
)


@dataclass(frozen=True)
class Run:
    """One model of an experiment: its prior, seed and condition."""

    prior: str
    seed: int
    digit: int | None = None
    mask: str | None = None  # recovery: the training corruption's tag

    @property
    def id(self) -> str:
        cond = f"-digit{self.digit}" if self.digit is not None else ""
        cond += f"-{self.mask}" if self.mask is not None else ""
        return f"{self.prior}{cond}-seed{self.seed}"


def run_key(experiment: str, run: str) -> str:
    """The key of one model, ``{experiment}/{run id}``: the workflow's ``--run-key`` and the MLflow
    tag ``lsnf.run_key``."""
    return f"{experiment}/{run}"


def parse_run(run_id: str) -> Run:
    """The :class:`Run` a run id names; ValueError for a string of another form. Only
    :func:`lsnf.evaluation.results.check_identity` reads a run id back, to refuse a result whose
    run id disagrees with the model it records."""
    m = _RUN_RE.match(run_id)
    if m is None:
        raise ValueError(f"malformed run id {run_id!r}")
    digit = m.group("digit")
    return Run(
        m.group("prior"), int(m.group("seed")), int(digit) if digit else None, m.group("mask")
    )
