"""The report's tables as headers and string cells, shared by the terminal and the HTML page
(and the study's own leaderboard in :mod:`weightsearch.progress`)."""

from __future__ import annotations

import math
from typing import Any

from weightsearch.report.analysis import ClassRow, ComparisonRow
from weightsearch.report.stats import wilcoxon_min_p

COMPARISON_HEADERS = (
    "trials",
    "best",
    "median",
    "best trial",
    "its folds",
    "baseline folds",
    "Δ mean",
    "wins",
    "Wilcoxon p (min)",
    "NB p",
    "verdict",
)


def _score(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def folds_cell(values: list[float]) -> str:
    """Per-fold scores as one cell: ``0.600 0.620 …``."""
    return " ".join(f"{v:.3f}" for v in values)


def format_comparison(
    rows: list[ComparisonRow], compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of a comparison table.

    ``compact=True`` (the terminal) leaves out the baseline's folds, the same on every row,
    and the Wilcoxon floor where it is the usual one for the fold count; both are printed
    once by the terminal's summary line.
    """
    by = rows[0].by if rows else "scheme"
    out = []
    for r in rows:
        extra = [f"+{r.n_pruned} pruned"] if r.n_pruned else []
        extra += [f"{r.n_failed} failed"] if r.n_failed else []
        trials = str(r.n_complete) + (f" ({', '.join(extra)})" if extra else "")
        folds = folds_cell(r.best_folds) or "–"
        is_base = r.best_trial is not None and r.best_trial == r.baseline_trial
        if r.baseline_folds is None:
            base = "never tried"
        elif is_base:
            base = "(is the baseline)"
        else:
            base = folds_cell(r.baseline_folds)
        t = r.test
        if t is None:
            cells = ["–", "–", "–", "–", r.note or "–"]
        else:
            floor = (
                ""
                if compact and t.wilcoxon_min_p == wilcoxon_min_p(t.k)
                else f" ({_p(t.wilcoxon_min_p)})"
            )
            cells = [
                f"{t.mean_diff:+.4f}",
                f"{t.wins}/{t.k}",
                _p(t.wilcoxon_p) + floor,
                _p(t.nb_p),
                t.verdict,
            ]
        trial = "–" if r.best_trial is None else f"{r.best_trial} ({r.partner})"
        row = [r.name, trials, _score(r.best), _score(r.median), trial, folds, base, *cells]
        if compact:
            row.pop(6)
            if is_base:
                row[4] += ", the baseline"
        out.append(row)
    headers = [by, *COMPARISON_HEADERS]
    if compact:
        headers.pop(6)
        headers[headers.index("Wilcoxon p (min)")] = "Wilcoxon p"
    return headers, out


#: Rows of the per-class table (rarest class first); the others are one "… N more" row.
PER_CLASS_ROWS = 40


def format_per_class(
    rows: list[ClassRow], limit: int = PER_CLASS_ROWS
) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of the per-class F1 table: the ``limit`` rarest classes,
    then a row saying how many more there are (the figure shows them all)."""
    headers = ["class", "support", "best trial F1", "baseline F1", "Δ"]
    more = len(rows) - limit
    rows = rows[:limit] if more > 0 else rows
    out = [
        [
            r.name,
            "–" if r.support is None else str(r.support),
            _score(r.best),
            _score(r.baseline) if r.baseline is not None else "never tried",
            "–" if r.delta is None else f"{r.delta:+.4f}",
        ]
        for r in rows
    ]
    if more > 0:
        out.append([f"… {more} more classes", "", "", "", ""])
    return headers, out


def _encoding(numeric: dict[str, Any] | None) -> str:
    """A table's numeric encoding beside the arch, when it is not plain standardize:
    ``" · quantile/8"``."""
    if not numeric or numeric.get("name") == "standardize":
        return ""
    return f" · {numeric['name']}/{numeric.get('bins', '?')}"


def leaderboard_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of a leaderboard (the rows of the study's ``leaderboard``)."""
    headers = ["#", "trial", "scheme", "loss", "arch", "CV ± std", "tuned decision → CV"]
    out = []
    for i, r in enumerate(rows, 1):  # the cross-fitted CV of a tuned threshold / class weights
        rule = "weights" if r.get("threshold") is None else f"{r['threshold']:.2f}"
        thr = "" if r.get("tuned") is None else f"{rule} → {r['tuned']:.4f}"
        out.append(
            [
                str(i),
                str(r["trial"]),
                r["scheme"],
                r["loss"],
                r["arch"] + _encoding(r.get("numeric")),
                f"{r['value']:.4f} ± {r['std']:.4f}",
                thr,
            ]
        )
    return headers, out
