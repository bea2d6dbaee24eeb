"""The ``report`` command: a leaderboard, a comparison of every weighting scheme and loss with
the unweighted baseline (paired tests over the CV folds), per-class F1, PNG plots and a
one-page ``report.html``, all logged to the study's MLflow parent run.

Layers, each importing only those above it: :mod:`~.stats` (paired tests) →
:mod:`~.analysis` (trials grouped, against the baseline) → :mod:`~.tables` (string cells) →
:mod:`~.summary` (a whole study: :class:`StudyReport`) → :mod:`~.figures`, :mod:`~.html`,
:mod:`~.terminal` → :mod:`~.build` (files and MLflow). The per-trial artifacts (used by the
objective) live in :mod:`weightsearch.artifacts`.
"""

from __future__ import annotations

from weightsearch.report.analysis import (
    BASELINE,
    BASELINE_LOSS,
    BASELINE_SCHEME,
    GROUPS,
    NO_BASELINE,
    ClassRow,
    ComparisonRow,
    best_trial,
    class_support,
    comparison_rows,
    complete_trials,
    component,
    find_baseline,
    fold_values,
    per_class_rows,
)
from weightsearch.report.build import ReportError, build_report, open_study, write_files
from weightsearch.report.figures import (
    FIGURES,
    best_confusion_figure,
    component_figure,
    figure_pngs,
    history_figure,
    importance_figure,
    make_figures,
    per_class_figure,
    placeholder_figure,
)
from weightsearch.report.html import HTML_NAME, render_html
from weightsearch.report.stats import (
    ALPHA,
    PairedTest,
    nadeau_bengio,
    paired_test,
    wilcoxon_min_p,
    wilcoxon_p,
)
from weightsearch.report.summary import StudyReport, analyse
from weightsearch.report.tables import (
    COMPARISON_HEADERS,
    format_comparison,
    format_per_class,
    leaderboard_cells,
)
from weightsearch.report.terminal import terminal_renderables

__all__ = [
    "ALPHA",
    "BASELINE",
    "BASELINE_LOSS",
    "BASELINE_SCHEME",
    "COMPARISON_HEADERS",
    "FIGURES",
    "GROUPS",
    "HTML_NAME",
    "NO_BASELINE",
    "ClassRow",
    "ComparisonRow",
    "PairedTest",
    "ReportError",
    "StudyReport",
    "analyse",
    "best_confusion_figure",
    "best_trial",
    "build_report",
    "class_support",
    "comparison_rows",
    "complete_trials",
    "component",
    "component_figure",
    "figure_pngs",
    "find_baseline",
    "fold_values",
    "format_comparison",
    "format_per_class",
    "history_figure",
    "importance_figure",
    "leaderboard_cells",
    "make_figures",
    "nadeau_bengio",
    "open_study",
    "paired_test",
    "per_class_figure",
    "per_class_rows",
    "placeholder_figure",
    "render_html",
    "terminal_renderables",
    "wilcoxon_min_p",
    "wilcoxon_p",
    "write_files",
]
