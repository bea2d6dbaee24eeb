"""What the ``export``, ``train`` and ``predict`` commands print: lines (Rich markup) and
Rich tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from weightsearch.production.config import TrainConfig
from weightsearch.production.exporting import Exported
from weightsearch.production.files import META_FILE, MODEL_FILE
from weightsearch.production.predict import PredictResult
from weightsearch.production.train import TrainResult


def test_tables(test: dict[str, Any], classes: list[str], task: str) -> list[Any]:
    """Rich tables of a test evaluation: per-class F1 and the confusion matrix."""
    from rich.table import Table

    per = Table(title="F1 per class (test)", title_justify="left")
    per.add_column("label" if task == "multilabel" else "class")
    per.add_column("support", justify="right")
    per.add_column("F1", justify="right")
    for c in classes:
        per.add_row(c, str(test["support"][c]), f"{test['per_class_f1'][c]:.4f}")
    cm = Table(
        title="Confusion (test)" if test["confusion_columns"] is None else "Outcomes (test)",
        title_justify="left",
    )
    columns = test["confusion_columns"] or classes
    cm.add_column("label" if task == "multilabel" else "true \\ pred")
    for col in columns:
        cm.add_column(str(col), justify="right")
    for c, row in zip(classes, test["confusion"], strict=True):
        cm.add_row(c, *(str(v) for v in row))
    return [per, cm]


def decision_text(cfg: TrainConfig) -> str:
    """The decision rule in words: ``argmax``, ``threshold 0.42 on P('1')``, ..."""
    thr, pos = cfg.decision.get("threshold"), cfg.decision.get("positive")
    if cfg.task == "multiclass":
        weights = cfg.decision_weights()
        if weights:
            return "argmax of w_c · p_c, w = " + ", ".join(f"{w:g}" for w in weights)
        return "argmax"
    if thr is None:
        return "threshold 0.5 (not tuned)"
    shown = f"{thr:.2f}" if not isinstance(thr, list) else ", ".join(f"{t:.2f}" for t in thr)
    return f"threshold {shown}" + (f" on P({pos!r})" if pos is not None else "")


def describe(cfg: TrainConfig) -> list[str]:
    """Two lines saying what a config trains."""
    w, t = cfg.weighting, cfg.train
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
        for k, v in cfg.model["params"].items()
    )
    if t.get("final") == "fold_ensemble":
        how = ("the trial's fold models averaged, each at its best epoch "
               f"{cfg.source.get('best_epochs', '?')} (nothing retrained)")
    else:
        how = (f"{t['optimizer']} lr {t['learning_rate']:g} · batch {t['batch_size']} · "
               f"{t['epochs']} epoch(s) (median of the CV best epochs "
               f"{cfg.source.get('best_epochs', '?')})")
    return [
        f"{w['scheme']} weights via {w['apply_weights']} · {cfg.loss['name']} loss · "
        f"{cfg.model['arch']} ({params})",
        f"{how} · {decision_text(cfg)}",
    ]


def export_lines(done: Exported) -> list[str]:
    """What ``weightsearch export`` prints."""
    from weightsearch.progress import tool_path

    cv = done.config.cv_summary()
    return [
        f"[green]wrote[/green] {done.path}: study {done.study!r}, trial {done.trial}"
        + (f" ({cv})" if cv else ""),
        *(f"  {line}" for line in describe(done.config)),
        f"  next: {tool_path('python')} -m weightsearch train {done.path} "
        f"--out models/{done.study}",
    ]


def train_banner(cfg: TrainConfig, data: str | None = None) -> list[str]:
    """What ``weightsearch train`` prints before training."""
    src = cfg.source
    return [
        f"[bold]train[/bold] study {src.get('study', '?')!r}, trial {src.get('trial', '?')} "
        f"on {data or cfg.data['source']} ({cfg.task}; hold-out test_size "
        f"{cfg.data['test_size']:g}, seed {cfg.data['seed']})",
        *(f"  {line}" for line in describe(cfg)),
    ]


def train_renderables(result: TrainResult) -> list[Any]:
    """What ``weightsearch train`` prints after training: weights, test scores and tables,
    the saved files and the MLflow run and model version."""
    cfg, meta = result.config, result.meta
    items: list[Any] = []
    values = meta["weights"]["values"]
    if values is not None:
        w = np.asarray(values)
        shown = ", ".join(
            f"{c}: {v:.3g}" if w.ndim == 1 else f"{c}: {v[0]:.3g}/{v[1]:.3g}"
            for c, v in zip(cfg.classes, w, strict=True)
        )
        items.append(f"trained {meta['epochs']} epoch(s) on {meta['train_rows']} rows in "
                     f"{meta['fit_seconds']:.1f} s; class weights {shown}")
    if meta.get("final") == "fold_ensemble":
        items.append(f"final model: the fold ensemble (train.final), the mean of trial "
                     f"{cfg.source.get('trial', '?')}'s {meta.get('fold_models')} fold models "
                     "from its MLflow run; nothing retrained")
    test = result.test
    if test is None:
        items.append("no held-out test split (data.test_size = 0): nothing to evaluate.")
    else:
        extra = ""
        if test["metric"] != "macro_f1":
            extra = f" · {test['metric']} [bold]{test['value']:.4f}[/bold]"
        cv = cfg.cv_summary()
        items.append(
            f"held-out test set ({test['rows']} rows): macro-F1 [bold]{test['macro_f1']:.4f}"
            f"[/bold]{extra}" + (f"  ({cv})" if cv else "") + f" · {decision_text(cfg)}"
        )
        items.extend(test_tables(test, cfg.classes, cfg.task))
        other = meta.get("test_other")
        if other:
            chosen = meta.get("final", "refit").replace("_", " ")
            items.append(
                f"the other final model, the {other['final'].replace('_', ' ')}, on the same "
                f"test set: macro-F1 {other['macro_f1']:.4f} (this model, the {chosen}: "
                f"{test['macro_f1']:.4f}; train.final chooses)"
            )
    if result.out is not None:
        items.append(f"[green]saved[/green] {result.out}/{MODEL_FILE} and {result.out}/{META_FILE}")
    ml = result.mlflow
    if ml:
        line = f"MLflow: run {ml['run_id']} in experiment {ml['experiment']!r}"
        if ml.get("version") is not None:
            line += f"; registered model {ml['registered_model']!r} version {ml['version']}"
            line += f" ({ml['version_uri']})"
            if ml.get("alias"):
                line += f", now {ml['alias']}"
        items.append(line)
        if ml.get("alias"):
            items.append(
                "  serve it: mlflow.pyfunc.load_model("
                f"{ml['alias']!r}).predict(rows)  (a DataFrame of raw rows; class names back)"
            )
    return items


def predict_lines(res: PredictResult) -> list[str]:
    """What ``weightsearch predict`` prints."""
    counts = ", ".join(f"{c}: {n}" for c, n in res.counts.items())
    return [f"[green]wrote[/green] {res.out}: {res.rows} row(s); predicted {counts}"]
