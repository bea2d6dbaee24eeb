"""The cross-validated objective: folds → fit → per-fold best epoch → trial value.

For each fold the class weights come from the training fold only, the model is fitted with
:class:`~weightsearch.callbacks.MacroF1Callback` (whole-fold F1 at every epoch end) followed
by early stopping on it, and the fold's score is its best epoch's score. The trial value is
the mean over folds.

Pruning: Optuna keeps only the first value reported for a step, so epoch ``e`` of fold ``k``
is reported at step ``k * epochs + e`` (unique across folds). With the Wilcoxon pruner each
fold's best score is reported at step ``k`` instead, as that pruner expects.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightsearch.space import Space
from weightsearch.spec import Spec
from weightsearch.workers import mark_worker


class TrialFailed(RuntimeError):
    """A failure of one trial (NaN loss, a build error): the study goes on."""


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration as flat params named like the search space's Optuna params.

    ``{"loss": {"name": "focal", "params": {"gamma": 2}}}`` →
    ``{"loss.name": "focal", "loss.focal.gamma": 2}``, so a trial's ``params`` are a subset.
    """
    out: dict[str, Any] = {}
    for section, part in config.items():
        choice = next((v for k, v in part.items() if k != "params"), None)
        for key, value in part.items():
            if key == "params":
                out.update({f"{section}.{choice}.{k}": v for k, v in value.items()})
            else:
                out[f"{section}.{key}"] = value
    return out


@dataclass
class FoldResult:
    value: float
    best_epoch: int  # 1-based
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)


def _make_reporter(**kwargs: Any) -> Any:
    import keras

    class EpochReporter(keras.callbacks.Callback):
        """Logs each epoch to the tracker, reports to Optuna, and stops on NaN or pruning.

        Must come after MacroF1Callback, which writes ``val_<metric>`` into ``logs``.
        """

        def __init__(
            self,
            trial: Any,
            tracker: Any,
            run: str | None,
            fold: int,
            epochs: int,
            metric: str,
            report_epochs: bool,
            status: Any = None,
        ) -> None:
            super().__init__()
            self.trial, self.tracker, self.run = trial, tracker, run
            self.fold, self.epochs, self.metric = fold, epochs, metric
            self.report_epochs, self.status = report_epochs, status
            self.pruned = False
            self.nan_epoch: int | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            from weightsearch.runner import interrupt_requested

            if interrupt_requested():  # a Ctrl-C that Python dropped still stops the trial
                raise KeyboardInterrupt("interrupted")
            logs = logs or {}
            loss = float(logs.get("loss", 0.0))
            if not math.isfinite(loss):
                self.nan_epoch = epoch
                self.model.stop_training = True
                return
            keys = ("loss", "val_loss", "val_macro_f1", f"val_{self.metric}")
            self.tracker.log_metrics(
                self.run,
                {f"fold{self.fold}/{k}": float(logs[k]) for k in dict.fromkeys(keys) if k in logs},
                step=epoch,
            )
            if self.status is not None:
                self.status(self.fold, epoch)
            if self.report_epochs:
                value = float(logs[f"val_{self.metric}"])
                self.trial.report(value, step=self.fold * self.epochs + epoch)
                if self.trial.should_prune():
                    self.pruned = True
                    self.model.stop_training = True

    return EpochReporter(**kwargs)


class Objective:
    """Callable Optuna objective for one study.

    ``train_x``/``train_y`` is the study's training part (the held-out test split is never
    passed in). ``status`` is an optional ``(trial, fold, epoch)`` progress hook.
    """

    def __init__(
        self, spec: Spec, data: Any, space: Space, tracker: Any, status: Any = None
    ) -> None:
        self.spec = spec
        self.data = data
        self.space = space
        self.tracker = tracker
        self.status = status
        self.metric = spec.cv.metric
        self.report_epochs = spec.search.pruner not in ("none", "wilcoxon")
        self.report_folds = spec.search.pruner == "wilcoxon"
        from weightsearch.data import kfold

        self.folds = kfold(data.y, data.task, spec.cv.folds, spec.seed)

    # ---- one trial -------------------------------------------------------------------
    def __call__(self, trial: Any) -> float:
        import optuna

        from weightsearch import training

        mark_worker(trial)  # first: from now on a lost process can be told from a live one
        config = self.space.suggest(trial)
        trial.set_user_attr("config", config)
        params = flatten(config)
        try:
            full_w = training.compute_weights(
                self.data.y, self.data.task, self.data.n_classes, config["weighting"]
            )
            params.update(training.weights_params(full_w, self.data.classes))
        except ValueError as exc:  # a bad parameter combination fails this trial only
            params["weights_error"] = str(exc)
        run = self.tracker.start_trial(
            trial.number, params, {"optuna.study": self.spec.name, "weightsearch.role": "trial"}
        )
        trial.set_user_attr("mlflow_run_id", run)
        state = "FAIL"
        try:
            value = self._cross_validate(trial, config, run)
            state = "COMPLETE"
            return value
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except (KeyboardInterrupt, SystemExit):
            state = "KILLED"
            trial.set_user_attr("error", "interrupted")
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            trial.set_user_attr("error", message)
            self.tracker.set_tags(run, {"error": message[:5000]})
            raise
        finally:
            self.tracker.end_trial(run, state)
            training.clear()

    def _cross_validate(self, trial: Any, config: dict[str, Any], run: str | None) -> float:
        import keras
        import optuna

        from weightsearch import metrics, training
        from weightsearch.callbacks import MacroF1Callback
        from weightsearch.data import model_targets

        d, cv = self.data, self.spec.cv
        x, y, task, n = d.x, d.y, d.task, d.n_classes
        positive = d.positive_class if d.positive_class is not None else 1
        oof = np.zeros((len(y), n), dtype=np.float64)
        results: list[FoldResult] = []
        fit_seconds = 0.0
        status = None
        if self.status is not None:

            def status(fold: int, epoch: int) -> None:
                self.status(trial.number, fold, epoch)

        for k, (tr, va) in enumerate(self.folds):
            built = training.build(
                config,
                x=x[tr],
                y=y[tr],
                task=task,
                n_classes=n,
                apply_weights=cv.apply_weights,
                seed=self.spec.seed * 7919 + trial.number * 31 + k,
            )
            f1 = MacroF1Callback(
                x[va],
                y[va],
                task=task,
                n_classes=n,
                threshold=0.5,
                positive=positive,
                metric=self.metric,
                batch_size=max(256, cv.batch_size),
            )
            reporter = _make_reporter(
                trial=trial,
                tracker=self.tracker,
                run=run,
                fold=k,
                epochs=cv.epochs,
                metric=self.metric,
                report_epochs=self.report_epochs,
                status=status,
            )
            callbacks = [f1, reporter]  # F1 first: the others read val_<metric> from logs
            if cv.patience:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor=f"val_{self.metric}",
                        mode="max",
                        patience=cv.patience,
                    )
                )
            start = time.perf_counter()
            built.model.fit(
                x[tr],
                model_targets(y[tr], task, n),
                epochs=cv.epochs,
                batch_size=cv.batch_size,
                verbose=0,
                callbacks=callbacks,
                shuffle=True,
                **built.fit_kwargs,
            )
            fit_seconds += time.perf_counter() - start
            if reporter.nan_epoch is not None:
                raise TrialFailed(
                    f"loss became NaN or inf at epoch {reporter.nan_epoch + 1} of fold {k}"
                )
            if reporter.pruned:
                trial.set_user_attr("pruned_at", {"fold": k, "epoch": len(f1.history)})
                raise optuna.TrialPruned(f"pruned at fold {k}, epoch {len(f1.history)}")
            results.append(
                FoldResult(
                    float(f1.best_value), int(f1.best_epoch) + 1, len(f1.history), list(f1.history)
                )
            )
            oof[va] = f1.best_proba
            del built, f1, reporter, callbacks  # the fold's model goes before the next is built
            if self.report_folds:
                trial.report(results[-1].value, step=k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {k}")

        values = np.array([r.value for r in results])
        value = float(values.mean())
        summary: dict[str, Any] = {
            "fold_values": values.tolist(),
            "cv_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "best_epochs": [r.best_epoch for r in results],
            "epochs_run": [r.epochs_run for r in results],
            "fit_seconds": fit_seconds,
            "metric": self.metric,
        }
        pred = metrics.predict_labels(oof, task, threshold=0.5, positive=positive)
        per_class = metrics.per_class_f1(y, pred, task, n)
        summary["per_class_f1"] = {c: float(v) for c, v in zip(d.classes, per_class, strict=True)}
        summary["oof_confusion"] = (  # pooled out-of-fold counts at threshold 0.5, for `report`
            metrics.multilabel_confusion_matrix(y, pred)
            if task == "multilabel"
            else metrics.confusion_matrix(y, pred, n)
        ).tolist()
        if cv.tune_threshold and task in ("binary", "multilabel"):
            summary.update(self._tune(oof, positive))
        for key, val in summary.items():
            trial.set_user_attr(key, val)

        m = self.metric
        logged = {f"cv_{m}": value, f"cv_{m}_std": summary["cv_std"]}
        logged.update({f"fold{i}/best_{m}": v for i, v in enumerate(values)})
        logged.update({f"f1.{c}": v for c, v in summary["per_class_f1"].items()})
        if "threshold" in summary:
            logged["threshold"] = summary["threshold"]
            logged[f"cv_{m}_tuned"] = summary["cv_value_tuned"]
        self.tracker.log_metrics(run, logged)
        self._log_best_fold(run, results, oof, positive)
        return value

    def _tune(self, oof: np.ndarray, positive: int) -> dict[str, Any]:
        """Threshold tuned on pooled out-of-fold predictions, and an honest cross-fitted score.

        The cross-fitted score applies to fold k the threshold tuned on the other folds.
        """
        from weightsearch import metrics

        d = self.data
        kw = {"task": d.task, "metric": self.metric, "positive": positive}
        threshold, pooled = metrics.tune_threshold(d.y, oof, **kw)
        crossfit = []
        for _tr, va in self.folds:
            mask = np.ones(len(d.y), dtype=bool)
            mask[va] = False
            t_k, _ = metrics.tune_threshold(d.y[mask], oof[mask], **kw)
            pred = metrics.predict_labels(oof[va], d.task, threshold=t_k, positive=positive)
            crossfit.append(
                metrics.score(
                    self.metric,
                    d.y[va],
                    pred,
                    task=d.task,
                    n_classes=d.n_classes,
                    positive=positive,
                )
            )
        return {
            "threshold": float(threshold),
            "cv_value_tuned": float(np.mean(crossfit)),
            "pooled_value_tuned": float(pooled),
        }

    def _log_best_fold(
        self, run: str | None, results: list[FoldResult], oof: np.ndarray, positive: int
    ) -> None:
        """Confusion matrix PNG and classification report of the best fold."""
        if run is None:
            return
        from weightsearch import report

        best = int(np.argmax([r.value for r in results]))
        _, va = self.folds[best]
        d = self.data
        report.log_fold_artifacts(
            self.tracker,
            run,
            d.y[va],
            oof[va],
            task=d.task,
            classes=d.classes,
            positive=positive,
            title=f"fold {best} (best), epoch {results[best].best_epoch}",
        )
