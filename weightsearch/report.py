"""Tables, statistics and plots of studies and trials."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(cm: np.ndarray, labels: list[str], title: str = "") -> Any:
    """A labelled confusion-matrix heat map (rows: true class, columns: predicted)."""
    plt = _pyplot()
    size = max(3.5, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    top = cm.max() if cm.size else 0
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            str(int(v)),
            ha="center",
            va="center",
            color="white" if top and v > top / 2 else "black",
            fontsize=8,
        )
    fig.tight_layout()
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


def log_fold_artifacts(
    tracker: Any,
    run: str | None,
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    task: str,
    classes: list[str],
    positive: int,
    title: str,
    threshold: float = 0.5,
) -> None:
    """Log a fold's confusion-matrix PNG and classification report to a tracker run."""
    from weightsearch import metrics

    pred = metrics.predict_labels(proba, task, threshold=threshold, positive=positive)
    cm, columns = fold_confusion(y_true, pred, task, len(classes))
    plt = _pyplot()
    if columns is None:
        fig = confusion_figure(cm, classes, title)
    else:
        fig = confusion_figure(cm, columns, title)
        fig.axes[0].set_yticks(range(len(classes)), classes)
        fig.axes[0].set_xlabel("outcome")
        fig.axes[0].set_ylabel("label")
    try:
        tracker.log_figure(run, fig, "confusion_matrix.png")
    finally:
        plt.close(fig)
    text = f"{title}\n\n" + classification_text(y_true, pred, task, classes)
    tracker.log_text(run, text, "classification_report.txt")
