"""The one-page, self-contained ``report.html``: the tables, and the PNGs embedded as base64
data URIs."""

from __future__ import annotations

import base64
import html

from weightsearch.report.analysis import BASELINE_LOSS, BASELINE_SCHEME
from weightsearch.report.stats import ALPHA
from weightsearch.report.summary import StudyReport
from weightsearch.report.tables import format_comparison, format_per_class, leaderboard_cells

HTML_NAME = "report.html"

#: The figures the page shows, in order (keyed like ``figures.FIGURES``), with their captions.
CAPTIONS = {
    "per_class": "Per-class F1, best trial against the baseline",
    "confusion": "Confusion matrix of the best trial",
    "by_component": "CV score by weighting scheme and by loss",
    "history": "Optimisation history",
    "importances": "Hyperparameter importances",
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; } .warn { color: #b00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""

HOW_TO_READ = (
    "Each row is one weighting scheme (or loss). <b>best</b> and <b>median</b> are CV scores "
    "over its complete trials. <b>its folds</b> are the per-fold scores of its best trial, "
    f"<b>baseline folds</b> those of the best <code>{BASELINE_SCHEME}</code> + "
    f"<code>{BASELINE_LOSS}</code> "
    "trial, on the same folds. <b>Δ mean</b> is the mean per-fold gain over the baseline and "
    "<b>wins</b> the folds where it is ahead. Two paired tests say whether the gain is beyond "
    "fold-to-fold noise: the Wilcoxon signed-rank test (the smallest p it can reach with this "
    "many folds in brackets) and the Nadeau–Bengio corrected t-test (<b>NB p</b>), which "
    "accounts for the overlap of CV training sets. The verdict is <i>better</i> or "
    f"<i>worse</i> when NB p &lt; {ALPHA}, else <i>within noise</i>. The best "
    "of many trials is optimistically biased, so treat a small gain with few folds as "
    "unproven, and confirm the winner on the held-out test split."
)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(rep: StudyReport, images: dict[str, bytes]) -> str:
    """One self-contained page: tables, and the PNGs (keyed like :data:`CAPTIONS`) embedded
    as base64 data URIs."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>weightsearch report: {esc(rep.study_name)}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>Study {esc(rep.study_name)}</h1>",
        f"<p>{esc(rep.description)}</p>" if rep.description else "",
        f"<p class='note'>engine {esc(rep.engine)} · metric CV {esc(rep.metric)} · "
        f"{rep.folds or '?'} folds · {esc(rep.states_line)}</p>",
        "<h2>Leaderboard</h2>",
        _table(*leaderboard_cells(rep.leaderboard)),
        "<h2>Weighting schemes and losses against the unweighted baseline</h2>",
        f"<p class='{'warn' if rep.baseline is None else 'note'}'>{esc(rep.baseline_note)}</p>",
        f"<p class='note'>{HOW_TO_READ}</p>",
        "<h3>By weighting scheme</h3>",
        _table(*format_comparison(rep.schemes)),
        "<h3>By loss</h3>",
        _table(*format_comparison(rep.losses)),
        "<h2>Per-class F1: where the winner helps and where it costs</h2>",
        "<p class='note'>Out-of-fold F1 per class at threshold 0.5 (argmax for multi-class), "
        "rarest class first. "
        "Weighting usually raises the rare classes and may lower the frequent ones.</p>",
        _table(*format_per_class(rep.per_class)) if rep.per_class else "<p>–</p>",
        "<h2>Final models</h2>",
        f"<p class='note'>{esc(rep.final_note)}</p>",
        _table(*rep.final_rows()) if rep.final_models else
        "<p>No final model trained yet (<code>weightsearch train</code>).</p>",
    ]
    for key, caption in CAPTIONS.items():
        if key in images:
            data = base64.b64encode(images[key]).decode("ascii")
            parts.append(
                f"<h3>{caption}</h3><img alt='{caption}' src='data:image/png;base64,{data}'>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
