"""The report's figures (matplotlib, and Optuna's matplotlib plots), and their PNG bytes.

A figure that cannot be drawn (too few trials, nothing stored) is a placeholder saying why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from weightsearch.artifacts import TICK_LABEL_MAX, confusion_figure
from weightsearch.base import first_line
from weightsearch.report.analysis import (
    BASELINE,
    NO_BASELINE,
    ClassRow,
    complete_trials,
    component,
)
from weightsearch.report.summary import StudyReport

#: Each figure's key → the PNG file a report directory holds for it.
FIGURES = {
    "history": "optimization_history.png",
    "importances": "param_importances.png",
    "by_component": "f1_by_scheme_and_loss.png",
    "per_class": "per_class_f1.png",
    "confusion": "confusion_best.png",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def placeholder_figure(title: str, reason: str) -> Any:
    """A figure that says why the real plot could not be drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.45, reason, ha="center", va="center", wrap=True, fontsize=10, color="0.3")
    return fig


@contextmanager
def _optuna_plotting() -> Iterator[None]:
    """Optuna's matplotlib plots: no experimental warnings, and their ``ggplot`` style kept
    from leaking into the other figures (they call ``plt.style.use``)."""
    import warnings

    import matplotlib
    import optuna

    _pyplot()
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def history_figure(study: Any, metric: str = "macro_f1") -> Any:
    """Optuna's optimisation history (value per trial and best so far)."""
    title = "Optimisation history"
    if not complete_trials(study.trials):
        return placeholder_figure(title, "no complete trial yet")
    from optuna.visualization.matplotlib import plot_optimization_history

    with _optuna_plotting():
        ax = plot_optimization_history(study, target_name=f"CV {metric}")
    fig = ax.figure
    fig.set_size_inches(7, 4)
    fig.tight_layout()
    return fig


def importance_figure(study: Any, seed: int = 0) -> Any:
    """Optuna's fANOVA hyperparameter importances (parameters every complete trial has)."""
    title = "Hyperparameter importances"
    done = complete_trials(study.trials)
    if len(done) < 2:
        return placeholder_figure(title, f"needs at least 2 complete trials, got {len(done)}")
    if len({t.value for t in done}) < 2:
        return placeholder_figure(title, "every complete trial has the same value")
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    try:
        with _optuna_plotting():
            ax = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except Exception as exc:  # e.g. no parameter varies across the complete trials
        return placeholder_figure(title, f"not computable: {first_line(exc)}")
    fig = ax.figure
    if not ax.patches:
        _pyplot().close(fig)
        return placeholder_figure(title, "no parameter varies across the complete trials")
    fig.set_size_inches(7, max(3.0, 0.35 * len(ax.patches) + 1.5))
    fig.tight_layout()
    return fig


def component_figure(trials: list[Any], metric: str = "macro_f1", seed: int = 0) -> Any:
    """CV score of every complete trial by weighting scheme and by loss (box + points)."""
    done = complete_trials(trials)
    if not done:
        return placeholder_figure(f"CV {metric} by scheme and by loss", "no complete trial yet")
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, by in zip(axes, ("scheme", "loss"), strict=True):
        groups: dict[str, list[float]] = {}
        for t in done:
            groups.setdefault(component(t, by), []).append(float(t.value))
        names = sorted(groups, key=lambda n: -max(groups[n]))
        data = [groups[n] for n in names]
        ax.boxplot(data, widths=0.5, showfliers=False)
        for i, vals in enumerate(data, 1):
            x = i + rng.uniform(-0.12, 0.12, len(vals))
            ax.scatter(x, vals, s=16, alpha=0.7, color="C1", zorder=3)
        ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(groups[n])})" for n in names])
        ax.set_title(f"by {'weighting scheme' if by == 'scheme' else 'loss'}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"CV {metric}")
    fig.suptitle(f"CV {metric} of every complete trial")
    fig.tight_layout()
    return fig


def per_class_figure(rows: list[ClassRow], best: Any, baseline: Any | None) -> Any:
    """Per-class F1 of the best trial next to the baseline's, rarest class first."""
    title = "Per-class F1 (out-of-fold)"
    if not rows:
        return placeholder_figure(title, "the best trial has no per-class F1")
    plt = _pyplot()
    n = len(rows)
    named = n <= TICK_LABEL_MAX  # above: numbered ticks, a figure of at most 14 inches
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * n + 2) if named else 14.0, 4))
    x = np.arange(n)
    width = 0.4 if baseline is not None else 0.6
    combo = f"{component(best, 'scheme')} + {component(best, 'loss')}"
    best_label = f"best: trial {best.number} ({combo})"
    if baseline is not None:
        ax.bar(x - width / 2, [r.best for r in rows], width, label=best_label, color="C0")
        ax.bar(
            x + width / 2,
            [r.baseline if r.baseline is not None else 0.0 for r in rows],
            width,
            label=f"baseline: trial {baseline.number} ({BASELINE})",
            color="0.65",
        )
    else:
        ax.bar(x, [r.best for r in rows], width, label=best_label, color="C0")
        ax.text(0.5, 1.02, NO_BASELINE, transform=ax.transAxes, ha="center", fontsize=9, color="C3")
    if named:
        labels = [r.name if r.support is None else f"{r.name}\n(n={r.support})" for r in rows]
        ax.set_xticks(x, labels, rotation=0 if n <= 8 else 45, ha="center" if n <= 8 else "right")
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.set_xlabel(f"class, by position in the per-class table ({n} classes)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title + (", rarest class first" if rows[0].support is not None else ""), pad=16)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def best_confusion_figure(best: Any | None) -> Any:
    """Pooled out-of-fold confusion matrix of the best trial (threshold 0.5)."""
    title = "Confusion matrix of the best trial"
    if best is None:
        return placeholder_figure(title, "no complete trial yet")
    cm = best.user_attrs.get("oof_confusion")
    if not cm:
        return placeholder_figure(
            title, "this trial stored no out-of-fold confusion (run by an older weightsearch)"
        )
    classes = list(best.user_attrs.get("per_class_f1", {}))
    m = np.asarray(cm, dtype=np.int64)
    rule = "argmax" if m.ndim == 2 and len(m) > 2 else "threshold 0.5"
    heading = f"Best trial ({best.number}): pooled out-of-fold confusion\n({rule})"
    if m.ndim == 3:  # multilabel (L, 2, 2) → one row per label: TN FP FN TP
        return confusion_figure(
            m.reshape(len(m), 4),
            ["TN", "FP", "FN", "TP"],
            heading,
            row_labels=classes or [str(i) for i in range(len(m))],
            xlabel="outcome",
            ylabel="label",
        )
    return confusion_figure(m, classes or [str(i) for i in range(len(m))], heading)


def make_figures(study: Any, rep: StudyReport) -> dict[str, Any]:
    """Every report figure, keyed like :data:`FIGURES`."""
    trials = list(study.trials)
    return {
        "history": history_figure(study, rep.metric),
        "importances": importance_figure(study),
        "by_component": component_figure(trials, rep.metric),
        "per_class": per_class_figure(rep.per_class, rep.best, rep.baseline),
        "confusion": best_confusion_figure(rep.best),
    }


def figure_pngs(study: Any, rep: StudyReport, dpi: int = 90) -> dict[str, bytes]:
    """Every report figure as PNG bytes, keyed like :data:`FIGURES` (each figure closed)."""
    import io

    plt = _pyplot()
    images: dict[str, bytes] = {}
    for key, fig in make_figures(study, rep).items():
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=dpi)
        finally:
            plt.close(fig)
        images[key] = buf.getvalue()
    return images
