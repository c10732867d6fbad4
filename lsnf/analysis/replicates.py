"""Bootstrap replicates of a result's value, recomputed from its per-example file
(docs/method.md §9).

A table cell's interval and a paired comparison both rest on :meth:`Replicates.of`: for one
result file and one of its values, the value recomputed from the per-example file (checked
against the recorded value) and its bootstrap replicates. Every result with n test examples
is resampled with the *same* weights (B, n), so replicates of two priors on the same examples
are paired by construction; FID's replicates (over generated samples) come from its ``.npz``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsnf.errors import UserError
from lsnf.evaluation.registry import value_of
from lsnf.evaluation.results import read_examples
from lsnf.metrics.stats import REPLICATES, SEED, STATISTICS, Statistic, resample_weights

__all__ = ["Replicates", "statistic_of", "verify_result"]


def statistic_of(evaluation: str, column: str) -> Statistic:
    """The statistic behind ``column`` of a result of ``evaluation`` (lsnf.evaluation.registry)."""
    return STATISTICS[value_of(evaluation, column).statistic]


def _columns(examples: Any) -> dict[str, np.ndarray]:
    """Per-example columns; completions of one image averaged (the image is the unit that is
    resampled)."""
    if "completion" in examples:
        examples = examples.groupby("example", sort=True).mean(numeric_only=True)
    return {c: examples[c].to_numpy() for c in examples.columns}


def verify_result(file: str | Path, record: dict[str, Any]) -> None:
    """The checks the tables make of a result before they use it, for whatever copies it
    elsewhere (MLflow): its identity (:func:`lsnf.evaluation.results.check_identity`), its
    per-example file's SHA-256, and each of its values recomputed from that file (FID's, stored,
    excepted); UserError on the first that fails."""
    from lsnf.evaluation.registry import EVALUATIONS
    from lsnf.evaluation.results import check_identity

    check_identity(file, record)
    if "failed" in record:  # a model that failed to train (§6.7): no values to recompute
        from lsnf.errors import UserError

        if record["value"] is not None or record.get("n") != 0:
            raise UserError(f"{file}: a result of a model that failed to train has values")
        return
    reps = Replicates(replicates=1)
    for value in EVALUATIONS[record["evaluation"]].values:
        reps.of(file, record["evaluation"], value.column, record[value.column])


@dataclass
class Replicates:
    """Recomputed values and bootstrap replicates of results, cached per file and column."""

    replicates: int = REPLICATES
    seed: int = SEED
    _weights: dict[int, np.ndarray] = field(default_factory=dict)
    _examples: dict[str, Any] = field(default_factory=dict)
    _cache: dict[tuple[str, str], tuple[float, np.ndarray]] = field(default_factory=dict)

    def weights(self, n: int) -> np.ndarray:
        """The resampling weights (B, n) shared by every result on n examples."""
        if n not in self._weights:
            self._weights[n] = resample_weights(n, self.replicates, self.seed)
        return self._weights[n]

    def examples(self, file: str | Path) -> Any:
        key = str(file)
        if key not in self._examples:
            self._examples[key] = read_examples(file)
        return self._examples[key]

    def of(
        self, file: str | Path, evaluation: str, column: str, recorded: float
    ) -> tuple[float, np.ndarray]:
        """(value, replicates (B,)) of ``column`` of the result at ``file``: the value
        recomputed from the per-example file, which must equal the ``recorded`` one."""
        key = (str(file), column)
        if key in self._cache:
            return self._cache[key]
        examples = self.examples(file)
        stat = statistic_of(evaluation, column)
        if stat.stored:  # FID: the point is the recorded value, replicates are stored
            out = (float(recorded), np.asarray(examples[stat.columns[0]], dtype=np.float64))
        else:
            values = _columns(examples)
            n = len(values[stat.columns[0]])
            out = (float(stat(values)[0]), stat(values, self.weights(n)))
            if not math.isclose(out[0], recorded, rel_tol=1e-4, abs_tol=1e-6):
                raise UserError(
                    f"{file}: {column} recomputed from its per-example file is "
                    f"{out[0]!r}, the result records {recorded!r}; rerun that "
                    f"evaluation"
                )
        self._cache[key] = out
        return out

    def of_scores(self, scores: np.ndarray, labels: np.ndarray, stat: str) -> np.ndarray:
        """Replicates of a model-free score's AUPRC/AUROC on the same examples (floors)."""
        values = {"score": scores, "label": labels}
        return STATISTICS[stat](values, self.weights(len(scores)))
