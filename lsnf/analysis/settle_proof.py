"""Does a settled verdict hold? The budget-sweep proof of the settled-verdict rule
(docs/method.md §9.1; docs/results.md, "A default that decides").

From one run whose courses reach a budget ``2E`` (its snapshots at E and 2E among them), the
comparison is rebuilt as if training had stopped at every snapshot budget ``E`` whose double is
also a snapshot (its results are then the course points at E, whose records hold the prefix's
convergence). For each comparison and such E:

- a **false settle**: the rule settled better, worse or indistinguishable at E, and the
  interval at 2E (the simultaneous one, by itself) says otherwise;
- what **the convergence rule** (§6.5 before the course: the interval's verdict only when every
  model of both sides has converged) would have decided at E.

:func:`settle_proof` returns one row per comparison and budget, and the counts;
:func:`settle_proof_of_run` finds a run's results and floors, and :func:`report` prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lsnf import layout
from lsnf.analysis.comparison import comparison_table, course_files
from lsnf.analysis.measurements import (
    load_floors,
    load_measurements,
    setting_text,
    with_trivial_fid,
)
from lsnf.analysis.replicates import Replicates
from lsnf.errors import UserError
from lsnf.metrics.stats import VERDICTS
from lsnf.training.convergence import CONVERGED, MIN_SEEDS

__all__ = ["report", "settle_proof", "settle_proof_of_run"]

_KEY = ["evaluation", "experiment", "condition", "metric", "comparison"]


def _kind(verdict: str) -> str | None:
    return next((v for v in VERDICTS if verdict.startswith(v)), None)


def _all_converged(convergence: str) -> bool:
    """Every side of a comparison's ``convergence`` text ("LFBM: converged; ABP: ...") has only
    converged models."""
    return all(part.split(": ", 1)[1] == CONVERGED for part in convergence.split("; "))


def _at(results: list[str], budget: int, floors: pd.DataFrame) -> pd.DataFrame:
    """The measurements of every result's course point at ``budget`` iterations."""
    files = [course_files(f, budget)[budget] for f in results]
    return with_trivial_fid(load_measurements(files), floors)


def settle_proof(
    results: list[str | Path], floors: list[str | Path] = (), min_seeds: int = MIN_SEEDS
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(rows, counts) of the proof (module docstring) over the results ``results`` (each with
    its course) and the FID rows ``floors``."""
    results = [str(f) for f in results]
    floor_rows = load_floors(list(floors))
    budgets = {f: set(course_files(f)) for f in results}
    every = set().union(*budgets.values())
    pairs = [(e, 2 * e) for e in sorted(every) if 2 * e in every and e > 0]
    reps = Replicates()
    rows = []
    for end, double in pairs:
        both = [f for f in results if {end, double} <= budgets[f]]  # results whose course has both
        at_e = comparison_table(_at(both, end, floor_rows), reps, setting_text, min_seeds, end)
        at_2e = comparison_table(
            _at(both, double, floor_rows), reps, setting_text, min_seeds, double
        )
        later = at_2e[0].set_index(_KEY)["interval_verdict"]
        for _, r in at_e[0].iterrows():
            settled = _kind(str(r["verdict"]))
            interval_2e = later.get(tuple(r[k] for k in _KEY))
            rows.append(
                {
                    **{k: r[k] for k in _KEY},
                    "E": end,
                    "verdict_at_E": r["verdict"],
                    "interval_at_E": r["interval_verdict"],
                    "interval_at_2E": interval_2e,
                    "settled": settled is not None,
                    "false_settle": settled is not None and settled != interval_2e,
                    "convergence_rule_decides": _all_converged(str(r["convergence"])),
                }
            )
    df = pd.DataFrame(rows)
    counts = {
        "budgets": [f"{e} vs {d}" for e, d in pairs],
        "comparisons": len(df),
        "settled": int(df["settled"].sum()) if len(df) else 0,
        "false_settles": int(df["false_settle"].sum()) if len(df) else 0,
        "convergence_rule_decided": int(df["convergence_rule_decides"].sum()) if len(df) else 0,
        "settled_where_convergence_rule_does_not": int(
            (df["settled"] & ~df["convergence_rule_decides"]).sum()
        )
        if len(df)
        else 0,
    }
    return df, counts


def settle_proof_of_run(
    results_dir: str | Path, min_seeds: int = MIN_SEEDS
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`settle_proof` over every evaluation result (``eval/*/*/*.json``, course indexes
    aside) and FID floor (``fid/*/*.json``) of the run folder ``results_dir``."""
    root = Path(results_dir)
    results = sorted(
        str(p) for p in root.glob("eval/*/*/*.json") if not layout.is_course_index(p.name)
    )
    if not results:
        raise UserError(f"no evaluation results under {root}/eval/: run the workflow first")
    return settle_proof(results, sorted(root.glob("fid/*/*.json")), min_seeds)


def report(rows: pd.DataFrame, counts: dict[str, Any]) -> str:
    """The rows that settled or that the convergence rule decides (Markdown), and the counts."""
    lines = []
    if not rows.empty:
        shown = rows[rows["settled"] | rows["convergence_rule_decides"]]
        lines.append(shown.to_markdown(index=False) if not shown.empty else "(nothing settled)")
    lines.append(
        f"budgets {', '.join(counts['budgets']) or 'none (no snapshot budget E with 2E)'}: "
        f"{counts['comparisons']} comparison-budgets, {counts['settled']} settled, "
        f"{counts['false_settles']} false settles (the interval at 2E disagrees); the "
        f"convergence rule decides {counts['convergence_rule_decided']}; settled where it does "
        f"not: {counts['settled_where_convergence_rule_does_not']}"
    )
    return "\n".join(lines)
