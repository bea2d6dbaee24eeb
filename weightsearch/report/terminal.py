"""What ``weightsearch report`` prints: rich tables and lines."""

from __future__ import annotations

import re
from typing import Any

from weightsearch.report.analysis import fold_values
from weightsearch.report.html import HTML_NAME
from weightsearch.report.stats import ALPHA, wilcoxon_min_p
from weightsearch.report.summary import StudyReport
from weightsearch.report.tables import format_comparison, format_per_class, leaderboard_cells

#: A cell made only of numbers and their punctuation: such a column is never cut or wrapped.
_NUMERIC = re.compile(r"[-+–0-9.e/ ±→()]*")
#: Columns of names and words, aligned left (and the first column of every table).
_TEXT_COLUMNS = ("verdict", "scheme", "loss", "arch", "class", "final model", "other final model")


def _table(title: str, headers: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        left = i == 0 or h in _TEXT_COLUMNS
        cells = [row[i] for row in rows]
        # numbers never get cut to "0.9…" on a narrow terminal: they keep their width
        # and the text columns (names, verdicts, fold lists) wrap instead
        numeric = bool(cells) and all(_NUMERIC.fullmatch(c) for c in cells)
        t.add_column(
            h,
            justify="left" if left else "right",
            no_wrap=numeric,
            min_width=max(len(c) for c in cells) if numeric else None,
            overflow="ellipsis" if numeric else "fold",
        )
    for row in rows:
        t.add_row(*row)
    return t


def terminal_renderables(rep: StudyReport) -> list[Any]:
    """What ``weightsearch report`` prints: rich tables and lines, in order."""
    out: list[Any] = [
        f"[bold]{rep.study_name}[/bold]: engine {rep.engine}, metric CV {rep.metric}, "
        f"{rep.folds or '?'} folds, {rep.states_line}"
    ]
    if rep.leaderboard:
        out.append(_table("Leaderboard", *leaderboard_cells(rep.leaderboard)))
    base_style = "bold yellow" if rep.baseline is None else "bold"
    out.append(f"[{base_style}]{rep.baseline_note}[/{base_style}]")
    for title, rows in (("By weighting scheme", rep.schemes), ("By loss", rep.losses)):
        out.append(_table(f"{title} (best trial vs baseline)", *format_comparison(rows, True)))
    floor = ""
    k = len(fold_values(rep.baseline)) if rep.baseline is not None else 0
    if k:
        floor = (
            f" With {k} folds Wilcoxon cannot go below p = {wilcoxon_min_p(k):.3g}"
            + (" (so it can never reach 0.05)" if wilcoxon_min_p(k) > ALPHA else "")
            + "; a row with zero fold differences shows its own floor in brackets."
        )
    out.append(
        "[dim]Δ mean: mean per-fold gain over the baseline; wins: folds ahead; Wilcoxon p: "
        f"signed-rank test on the fold differences.{floor} NB p: Nadeau–Bengio corrected t-test; "
        f"verdict: better or worse when NB p < {ALPHA}, else within noise.[/dim]"
    )
    if rep.per_class and rep.best is not None:
        title = f"Per-class F1: best trial {rep.best.number} vs " + (
            f"baseline trial {rep.baseline.number}" if rep.baseline is not None else "no baseline"
        )
        out.append(_table(title, *format_per_class(rep.per_class)))
    out.append(rep.final_note)
    if rep.final_models:
        out.append(_table("Final models (weightsearch train runs, newest first)",
                          *rep.final_rows()))
    if rep.out_dir is not None:
        out.append(f"Report: {rep.out_dir / HTML_NAME} ({len(rep.files)} files in {rep.out_dir})")
    if rep.mlflow_note:
        out.append(f"MLflow: {rep.mlflow_note}")
    return out
