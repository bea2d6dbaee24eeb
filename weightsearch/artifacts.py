"""Per-trial artifacts: a fold's confusion-matrix PNG and classification report.

The figure is drawn with matplotlib's object-oriented API (a ``Figure`` on its own Agg
canvas, no pyplot state), so it can be drawn on a background thread, and its cost is bounded:
the count of every cell is written only up to :data:`CELL_TEXT_MAX` cells and the class
names only up to :data:`TICK_LABEL_MAX` classes. Above that the figure is a heat map with a
colour bar and numbered ticks, of at most :data:`MAX_SIDE_IN` inches a side, so a 500-class
matrix costs about what a 50-class one does (text labels cost ~2 ms each, so per-cell counts
would grow as C²).

:func:`log_fold_artifacts` (called by the objective for each trial's best fold) hands the
drawing and the upload to the process's artifact thread
(:func:`weightsearch.tracking.submit_artifact_job`), off the trial's critical path;
:func:`write_fold_artifacts` does the same work synchronously.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Matrices with at most this many cells get each cell's count written in it (12 x 12).
CELL_TEXT_MAX = 150
#: Axes with at most this many rows (columns) are labelled with the class names.
TICK_LABEL_MAX = 40
#: The largest side of a confusion-matrix figure, in inches (at 100 dpi).
MAX_SIDE_IN = 9.0
FIGURE_NAME = "confusion_matrix.png"
REPORT_NAME = "classification_report.txt"
_FONT_SIZE = 8
_CHAR_IN = 0.062  # the width of an average character at 8 pt, in inches


def _margin(labels: list[str] | None, rotated: bool = False) -> float:
    """Inches needed beside an axis for its tick labels (``None``: numbered ticks) and its
    axis label."""
    longest = max((len(str(x)) for x in labels), default=1) if labels is not None else 4
    return 0.45 + _CHAR_IN * longest * (0.72 if rotated else 1.0)


def confusion_figure(
    cm: np.ndarray,
    labels: list[str],
    title: str = "",
    *,
    row_labels: list[str] | None = None,
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Any:
    """A confusion-matrix heat map (rows: ``row_labels`` or ``labels``, columns: ``labels``).

    Small matrices have each cell's count written in it; large ones get a colour bar and,
    above :data:`TICK_LABEL_MAX` classes, numbered ticks instead of the names.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cm = np.asarray(cm)
    if cm.ndim != 2:
        raise ValueError(f"a confusion matrix must be 2-D, but got shape {cm.shape}.")
    rows = list(labels if row_labels is None else row_labels)
    cols = list(labels)
    n_rows, n_cols = cm.shape
    named_rows = rows if n_rows <= TICK_LABEL_MAX and len(rows) == n_rows else None
    named_cols = cols if n_cols <= TICK_LABEL_MAX and len(cols) == n_cols else None
    counts = cm.size <= CELL_TEXT_MAX

    rotate = named_cols is not None and n_cols > 2 and max(len(str(c)) for c in cols) > 2
    cell = 0.42 if counts else 0.3
    left = _margin(named_rows)
    bottom = _margin(named_cols, rotated=True) + 0.1 if rotate else 0.6
    right = 0.25 if counts else 1.1  # room for the colour bar
    top = 0.35 + 0.16 * (title.count("\n") + 1)
    width = min(MAX_SIDE_IN, max(3.5, left + right + cell * n_cols))
    height = min(MAX_SIDE_IN, max(3.0, top + bottom + cell * n_rows))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=min(left / width, 0.45),
        right=max(1 - right / width, 0.55),
        bottom=min(bottom / height, 0.45),
        top=max(1 - top / height, 0.55),
    )
    ax = fig.add_subplot()
    # a matrix of more cells than pixels is averaged, so that lone errors stay visible
    smooth = max(n_rows, n_cols) > 200
    image = ax.imshow(
        cm, cmap="Blues", aspect="auto", interpolation="antialiased" if smooth else "nearest"
    )
    if named_cols is not None:
        ax.set_xticks(
            range(n_cols), named_cols, rotation=45 if rotate else 0,
            ha="right" if rotate else "center", fontsize=_FONT_SIZE,
        )
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        xlabel = f"{xlabel} (class index)"
    if named_rows is not None:
        ax.set_yticks(range(n_rows), named_rows, fontsize=_FONT_SIZE)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ylabel = f"{ylabel} (class index)"
    ax.tick_params(labelsize=_FONT_SIZE)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if counts:
        top_value = cm.max() if cm.size else 0
        for (i, j), v in np.ndenumerate(cm):
            ax.text(
                j, i, str(int(v)), ha="center", va="center", fontsize=_FONT_SIZE,
                color="white" if top_value and v > top_value / 2 else "black",
            )
    else:
        bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
        bar.ax.tick_params(labelsize=_FONT_SIZE)
    return fig


def classification_text(y_true: np.ndarray, pred: np.ndarray, task: str, classes: list[str]) -> str:
    """scikit-learn's classification report, with every class listed."""
    from sklearn.metrics import classification_report

    labels = None if task == "multilabel" else list(range(len(classes)))
    return classification_report(
        y_true, pred, labels=labels, target_names=classes, zero_division=0, digits=4
    )


def fold_confusion(
    y_true: np.ndarray, pred: np.ndarray, task: str, n: int
) -> tuple[np.ndarray, list[str] | None]:
    """(C, C) confusion for single-label; for multilabel an (L, 4) table of TN FP FN TP."""
    from weightsearch import metrics

    if task != "multilabel":
        return metrics.confusion_matrix(y_true, pred, n), None
    rows = []
    for label in range(y_true.shape[1]):
        t, p = y_true[:, label].astype(int), pred[:, label].astype(int)
        rows.append(metrics.confusion_matrix(t, p, 2).ravel())
    return np.array(rows), ["TN", "FP", "FN", "TP"]


def fold_artifacts(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    task: str,
    classes: list[str],
    positive: int,
    title: str,
    threshold: float = 0.5,
    weights: list[float] | None = None,
) -> tuple[Any, str]:
    """A fold's confusion-matrix figure and classification-report text, with the labels of
    :func:`~weightsearch.metrics.decide` (``weights``: multiclass decision weights)."""
    from weightsearch import metrics

    pred = metrics.decide(proba, task, threshold=threshold, positive=positive, weights=weights)
    cm, columns = fold_confusion(y_true, pred, task, len(classes))
    if columns is None:
        fig = confusion_figure(cm, classes, title)
    else:
        fig = confusion_figure(
            cm, columns, title, row_labels=classes, xlabel="outcome", ylabel="label"
        )
    return fig, f"{title}\n\n" + classification_text(y_true, pred, task, classes)


def write_fold_artifacts(
    tracker: Any, run: str | None, y_true: np.ndarray, proba: np.ndarray, **kwargs: Any
) -> None:
    """Draw and log a fold's confusion-matrix PNG and classification report, now
    (``kwargs`` as for :func:`fold_artifacts`)."""
    if run is None or not tracker.enabled:
        return
    fig, text = fold_artifacts(y_true, proba, **kwargs)
    tracker.log_text(run, text, REPORT_NAME)
    tracker.log_figure(run, fig, FIGURE_NAME)


def log_fold_artifacts(
    tracker: Any, run: str | None, y_true: np.ndarray, proba: np.ndarray, **kwargs: Any
) -> None:
    """:func:`write_fold_artifacts` (same arguments) on the artifact thread: this returns at
    once (unless that thread is several jobs behind).

    :func:`weightsearch.tracking.flush_artifacts` waits for them; the tracker's
    ``end_study`` and the interpreter's exit do so too.
    """
    if run is None or not tracker.enabled:
        return
    from weightsearch.tracking import submit_artifact_job

    y, p = np.array(y_true, copy=True), np.array(proba, copy=True)
    kw = {**kwargs, "classes": list(kwargs["classes"])}

    def job() -> None:
        write_fold_artifacts(tracker, run, y, p, **kw)

    submit_artifact_job(job, f"the fold artifacts of MLflow run {run}")
