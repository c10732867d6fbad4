"""Write every table from result JSONs (the ``tables`` rule): the comparison first (and its
forest plot, :mod:`lsnf.analysis.forest`), the paper's tables (:mod:`lsnf.analysis.paper_tables`),
the cost table and ``measurements.csv``, each as CSV (numbers), Markdown and LaTeX (display
strings);
:func:`table_names` is the list the workflow expects, from the same definitions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from lsnf import layout
from lsnf.analysis.measurements import (
    load_floors,
    load_measurements,
    setting_text,
    with_trivial_fid,
)
from lsnf.analysis.paper_tables import (
    PAPER_TABLES,
    PRIOR_NAMES,
    anomaly_table,
    evaluation_table,
    generation_table,
    inpainting_table,
    recovery_table,
)
from lsnf.analysis.replicates import Replicates
from lsnf.evaluation.registry import EVALUATIONS, Evaluation
from lsnf.io import atomic_folder, atomic_write_text
from lsnf.training.convergence import MIN_SEEDS

__all__ = ["table_names", "write_tables"]


def _own_table(ev: Evaluation) -> bool:
    shown = {name for names in PAPER_TABLES.values() for name in names}
    return bool(ev.values) and ev.name not in shown


def table_names(tasks: set[str], versus: bool) -> list[str]:
    """The tables that results of experiments of ``tasks`` give (``versus``: pairs of
    experiments are compared too), in the report's order; the workflow's targets."""
    own = [e.name for e in EVALUATIONS.values() if _own_table(e) and set(e.tasks) & tasks]
    return ["comparison", "course", *[t for t in PAPER_TABLES if t in tasks], *own, "cost"] + [
        "versus"
    ] * versus


def _write(
    out_dir: Path, name: str, numeric: pd.DataFrame, display: pd.DataFrame, preface: str = ""
) -> list[Path]:
    """One table as CSV (numbers), Markdown (``preface``, a paragraph, above it) and LaTeX
    (display strings)."""
    texts = {
        "csv": numeric.to_csv(index=False),
        "md": (preface and preface + "\n\n")
        + display.to_markdown(index=False, disable_numparse=True)
        + "\n",
        "tex": display.to_latex(index=False, escape=True),
    }
    assert tuple(texts) == layout.TABLE_FORMATS
    for ext, text in texts.items():
        atomic_write_text(out_dir / layout.table_file(name, ext), text)
    return [out_dir / layout.table_file(name, ext) for ext in texts]


def write_tables(
    result_files: list[str | Path],
    reference_path: str | Path,
    out_dir: str | Path,
    floor_files: list[str | Path] = (),  # type: ignore[assignment]
    results_dir: str | Path = layout.ROOT,
    versus: list[tuple[str, str]] = (),  # type: ignore[assignment]
    min_seeds: int = MIN_SEEDS,
) -> list[Path]:
    """Write the comparison table, every task's table whose evaluations the results hold, the cost
    table and (``versus``: pairs of experiments) the versus table into ``out_dir``, all or
    none: a result the tables refuse leaves the last tables as they were
    (``lsnf.io.atomic_folder``). Return the
    files written. ``min_seeds``: seeds per side before a comparison gives a verdict
    (docs/method.md §9)."""
    out_dir = Path(out_dir)
    floors = load_floors(list(floor_files))
    df = with_trivial_fid(load_measurements(result_files), floors)
    reference = yaml.safe_load(Path(reference_path).read_text())
    with atomic_folder(out_dir) as staging:  # a refused result leaves the last tables whole
        written = _write_all(df, reference, floors, staging, results_dir, versus, min_seeds)
    return [out_dir / p.relative_to(staging) for p in written]


def _write_all(
    df: pd.DataFrame,
    reference: dict,
    floors: pd.DataFrame,
    out_dir: Path,
    results_dir: str | Path,
    versus: list[tuple[str, str]],
    min_seeds: int,
) -> list[Path]:
    from lsnf.analysis.comparison import versus_table
    from lsnf.analysis.cost import cost_table

    reps = Replicates()
    written = [out_dir / layout.table_file("measurements", "csv")]
    atomic_write_text(written[0], df.to_csv(index=False))
    every = set(df.get("evaluation", []))
    if not df.empty:
        written += _write_comparison(df, reps, min_seeds, out_dir)
    builders = {
        "anomaly": lambda d: anomaly_table(d, reference["anomaly"], reps),
        "generation": lambda d: generation_table(d, reference["generation"], reps, floors),
        "inpainting": lambda d: inpainting_table(d, reps),
        "recovery": lambda d: recovery_table(d, reps),
        "cost": (
            lambda d: cost_table(d.assign(model=d.apply(_model_label, axis=1)), results_dir),
            every,
        ),
        "versus": (
            lambda d: versus_table(d, reps, list(versus), setting_text, min_seeds),
            every if versus else set(),
        ),
    }
    for ev in filter(_own_table, EVALUATIONS.values()):
        builders[ev.name] = (lambda d, e=ev: evaluation_table(d, e, reps), {ev.name})
    for name, builder in builders.items():
        build, needs = builder if isinstance(builder, tuple) else (builder, PAPER_TABLES[name])
        if df.empty or not every & set(needs):
            continue
        written += _write(out_dir, name, *build(df))
    return written


def _write_comparison(
    df: pd.DataFrame, reps: Replicates, min_seeds: int, out_dir: Path
) -> list[Path]:
    """The comparison table (its answer in one line above it), its forest plot, its course
    table and each experiment's course figure (docs/method.md §9, §9.1)."""
    from lsnf.analysis.comparison import comparison_table, course_display, verdict_summary
    from lsnf.analysis.forest import plot_course, plot_forest

    numeric, display, course = comparison_table(df, reps, setting_text, min_seeds)
    written = _write(out_dir, "comparison", numeric, display, verdict_summary(numeric))
    written += _write(out_dir, "course", course.drop(columns="digits", errors="ignore"),
                      course_display(course))  # fmt: skip
    plot_forest(numeric, out_dir / layout.FOREST)
    written.append(out_dir / layout.FOREST)
    for exp in sorted(set(df["experiment"])):
        path = out_dir / Path(layout.course_figure(exp)).name
        plot_course(course, numeric, exp, path)
        written.append(path)
    return written


def _model_label(row: pd.Series) -> str:
    return f"{PRIOR_NAMES[row['prior']]} [{row['experiment']}/{row['run']}]"
