"""The cross-validated objective: folds → fit → per-fold best epoch → trial value.

For each fold the class weights come from the training fold only, the model is scored by
:class:`~weightsearch.callbacks.MacroF1Callback` (whole-fold F1 at every epoch end) and
early-stopped on it, and the fold's score is its best epoch's score. The trial value is the
mean over folds.

The K fold models train side by side in one Keras model and one ``fit``
(:mod:`weightsearch.folds`; ``cv.parallel_folds``), or one after another where stacking
cannot apply; the trial's ``parallel_folds`` user attribute says which, and
``parallel_folds_reason`` why not.

Pruning: side by side, epoch ``e`` is reported at step ``e`` with the mean over folds of
each fold's best value so far (a stopped fold counts with its final best), which at the last
epoch is the trial value. With ``cv.parallel_folds = false``, fold ``k``'s epoch ``e`` is
reported at step ``k * epochs + e`` (Optuna keeps only the first value per step). A trial of
a side-by-side study that falls back to folds in turn reports the same mean-of-bests curve as
the others, after its last fold, so every trial's steps mean the same; it cannot be pruned
mid-way. With the Wilcoxon pruner each fold's best score is reported at step ``k``, as that
pruner expects.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC
from typing import Any

import numpy as np

from weightsearch.interrupts import interrupt_requested
from weightsearch.liveness import mark_worker
from weightsearch.pruners import reports
from weightsearch.space import Space, flatten
from weightsearch.spec import Spec
from weightsearch.storage import StudyError, store_error_types
from weightsearch.tracking import TrackingError

#: Where a completed trial's fold ensemble (its K fold models at their best epochs, averaged)
#: lies in its MLflow run's artifacts (issue 15: export and train do not use it yet).
FOLD_ENSEMBLE_ARTIFACT = "fold_ensemble/model.keras"

class TrialFailed(RuntimeError):
    """A failure of one trial (NaN loss, a build error): the study goes on."""


class TrialError(ABC):  # noqa: B024 - a virtual base, for isinstance only
    """What fails one trial and lets the study go on (Optuna's ``catch``): any
    ``Exception`` except a store's refusal to write (:class:`TrackingError`,
    :func:`~weightsearch.storage.store_error_types`), which stops the study."""

    @classmethod
    def __subclasshook__(cls, sub: type) -> bool:
        stops = (TrackingError, StudyError, *store_error_types())
        return issubclass(sub, Exception) and not issubclass(sub, stops)


def _mean_best_curve(outcomes: list[Any], metric: str) -> list[float]:
    """Per epoch, the mean over folds of each fold's best value so far (a fold that stopped
    counts with its final best): what side-by-side folds report at step = epoch."""
    runs = [[h[f"val_{metric}"] for h in o.history] for o in outcomes]
    n = max(len(r) for r in runs)
    best = [np.maximum.accumulate(r + [r[-1]] * (n - len(r))) for r in runs]
    return [float(np.mean([b[e] for b in best])) for e in range(n)]


class _MetricBuffer:
    """Per-epoch MLflow metrics, written in batches: at most one write a second, then the rest.

    Curves stay live (a second behind at most) while a fast trial makes a few writes, not one
    per fold and epoch.
    """

    def __init__(self, tracker: Any, run: str | None, every: float = 1.0) -> None:
        self.tracker, self.run, self.every = tracker, run, every
        self.rows: list[tuple[str, float, int]] = []
        self.last = time.monotonic()

    def add(self, metrics: dict[str, float], step: int) -> None:
        self.rows.extend((k, float(v), step) for k, v in metrics.items())
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.tracker.log_metric_rows(self.run, self.rows)
            self.rows = []
        self.last = time.monotonic()


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
        self.report_epochs = reports(spec.search.pruner) == "epochs"
        self.report_folds = reports(spec.search.pruner) == "folds"
        # The study's step numbering, the same for all its trials: step = epoch unless folds
        # never train side by side (see the module docstring).
        self.epoch_steps = spec.cv.parallel_folds is not False
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
        state, store_refused = "FAIL", False
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
        except TrackingError as exc:  # the store refused a write: it stops the study
            store_refused = True
            trial.set_user_attr("error", f"TrackingError: {exc}")
            raise
        except Exception as exc:
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            trial.set_user_attr("error", message)
            self.tracker.set_tags(run, {"error": message[:5000]})
            raise
        finally:
            try:
                self.tracker.end_trial(run, state)
            except TrackingError as exc:
                if not store_refused:  # else the first error stands
                    trial.set_user_attr("error", f"TrackingError: {exc}")
                    with contextlib.suppress(TrackingError):
                        self.tracker.end_trial(run, "FAIL")  # as Optuna will record it
                    raise
            finally:
                training.clear(freeze=state == "COMPLETE")

    def trial_seed(self, trial: Any) -> int:
        """The trial's seed: fold k's model is initialised with ``trial_seed + k``."""
        return self.spec.seed * 7919 + trial.number * 31

    def _members(self, config: dict[str, Any], trial: Any) -> list[Any]:
        """One :class:`~weightsearch.folds.Fold` per CV fold, its model built on its rows."""
        from weightsearch import training
        from weightsearch.callbacks import MacroF1Callback
        from weightsearch.folds import Fold

        d, cv = self.data, self.spec.cv
        positive = d.positive_class if d.positive_class is not None else 1
        out = []
        for k, (tr, va) in enumerate(self.folds):
            built = training.build_member(
                config,
                x=d.x[tr],
                y=d.y[tr],
                task=d.task,
                n_classes=d.n_classes,
                apply_weights=cv.apply_weights,
                seed=self.trial_seed(trial) + k,
                columns=d.columns,
            )
            scorer = MacroF1Callback(
                d.x[va], d.y[va], task=d.task, n_classes=d.n_classes, threshold=0.5,
                positive=positive, metric=self.metric, batch_size=max(256, cv.batch_size),
            )
            out.append(
                Fold(k, tr, va, built.model, built.loss, scorer, self._row_weights(built, tr))
            )
        return out

    def _row_weights(self, built: Any, tr: np.ndarray) -> np.ndarray | None:
        """Class weights given as sample weights, over all rows (the fold's rows set).

        ``class_weight`` becomes the equal ``sample_weight`` w[y_i]: Keras takes no
        ``class_weight`` for a model of several outputs, and the losses are identical.
        """
        kw, y = built.fit_kwargs, self.data.y
        if "sample_weight" in kw:
            sw = np.asarray(kw["sample_weight"], dtype=np.float32)
        elif "class_weight" in kw:
            w = np.array([kw["class_weight"][c] for c in range(self.data.n_classes)])
            sw = w[np.asarray(y[tr], dtype=np.int64)].astype(np.float32)
        else:
            return None
        rows = np.zeros((len(y),) + sw.shape[1:], dtype=np.float32)
        rows[tr] = sw
        return rows

    def _stack(self, config: dict[str, Any], members: list[Any]) -> tuple[Any, str | None]:
        """The folds' models as one vectorised model, or ``None`` and why they train in turn."""
        from weightsearch import folds as F
        from weightsearch import stacking

        setting = self.spec.cv.parallel_folds
        if setting is False:
            return None, "cv.parallel_folds = false"
        reason = F.stacking_blocker(config)
        if reason is None and setting == "auto":
            if self.report_folds:
                reason = "the wilcoxon pruner prunes between folds, so folds train in turn"
            else:
                cv = self.spec.cv
                steps, pad = F.batch_plan([len(m.train) for m in members], cv.batch_size)
                reason = F.memory_blocker(
                    [m.model for m in members], pad, self.data.x,
                    plan_rows=cv.epochs * steps * len(members) * pad,
                )
        if reason is not None:
            return None, reason
        try:
            stack = stacking.vectorize(
                [m.model for m in members], [m.loss for m in members], self.data.x[:8]
            )
        except stacking.NotStackable as exc:
            return None, str(exc)
        return stack, None

    def _cross_validate(self, trial: Any, config: dict[str, Any], run: str | None) -> float:
        import optuna

        from weightsearch import folds as F
        from weightsearch import metrics, training
        from weightsearch.data import model_targets

        d, cv = self.data, self.spec.cv
        task, n = d.task, d.n_classes
        positive = d.positive_class if d.positive_class is not None else 1
        members = self._members(config, trial)
        stack, reason = self._stack(config, members)
        parallel = stack is not None
        trial.set_user_attr("parallel_folds", parallel)
        if reason is not None:
            trial.set_user_attr("parallel_folds_reason", reason)
        log = _MetricBuffer(self.tracker, run)
        pruned: dict[str, int] = {}
        keys = ("loss", "val_loss", "val_macro_f1", f"val_{self.metric}")

        def on_epoch(
            epoch: int, scores: dict[int, dict[str, float]], bests: dict[int, float]
        ) -> bool:
            if interrupt_requested():  # a Ctrl-C that Python dropped still stops the trial
                raise KeyboardInterrupt("interrupted")
            for k, logs in scores.items():
                log.add({f"fold{k}/{key}": logs[key] for key in dict.fromkeys(keys)}, epoch)
            fold = None if parallel else next(iter(bests))
            if self.status is not None:
                self.status(trial.number, fold, epoch)
            if not self.report_epochs or not scores:
                return False
            if fold is None:  # step = epoch: the mean over folds of each fold's best so far
                trial.report(float(np.mean(list(bests.values()))), step=epoch)
                if epoch == cv.epochs - 1:  # the trial's value: finished, nothing to save
                    return False
            elif self.epoch_steps:  # in turn, in a study of step = epoch: reported at the end
                return False
            else:  # one fold at a time: its own value, at a step unique across folds
                trial.report(scores[fold][f"val_{self.metric}"], step=fold * cv.epochs + epoch)
            if trial.should_prune():
                pruned["epoch"] = epoch + 1
                if fold is not None:
                    pruned["fold"] = fold
                return True
            return False

        def after_fold(outcome: Any) -> bool:  # the Wilcoxon pruner: one value per fold
            if pruned:  # pruned during this fold: no later fold trains
                return True
            if not self.report_folds:
                return False
            trial.report(outcome.value, step=outcome.index)
            if trial.should_prune():
                pruned["fold"] = outcome.index
                return True
            return False

        start = time.perf_counter()
        try:
            outcomes = F.train_folds(
                members,
                x=d.x,
                targets=model_targets(d.y, task, n),
                epochs=cv.epochs,
                batch_size=cv.batch_size,
                make_optimizer=lambda: training.optimizer_of(config),
                patience=cv.patience,
                seed=self.trial_seed(trial),
                stack=stack,
                on_epoch=on_epoch,
                after_fold=after_fold,
            )
        except F.NonFiniteLoss as exc:
            raise TrialFailed(str(exc)) from None
        finally:
            log.flush()
        fit_seconds = time.perf_counter() - start
        if not parallel and self.epoch_steps and self.report_epochs and not pruned:
            # comparable with the study's stacked trials: the same curve, reported afterwards
            for epoch, value in enumerate(_mean_best_curve(outcomes, self.metric)):
                trial.report(value, step=epoch)
        if parallel and self.report_folds and not pruned:
            for o in outcomes:
                trial.report(o.value, step=o.index)
            if trial.should_prune():
                pruned["fold"] = len(outcomes) - 1
        if pruned:
            trial.set_user_attr("pruned_at", pruned)
            where = ", ".join(f"{k} {v}" for k, v in pruned.items())
            raise optuna.TrialPruned(f"pruned at {where}")

        oof = np.zeros((len(d.y), n), dtype=np.float64)
        for o in outcomes:
            oof[self.folds[o.index][1]] = o.best_proba
        values = np.array([o.value for o in outcomes])
        value = float(values.mean())
        best_epochs = [o.best_epoch + 1 for o in outcomes]
        summary: dict[str, Any] = {
            "fold_values": values.tolist(),
            "cv_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "best_epochs": best_epochs,
            "epochs_run": [o.epochs_run for o in outcomes],
            "fit_seconds": fit_seconds,
            "metric": self.metric,
        }
        pred = metrics.predict_labels(oof, task, threshold=0.5, positive=positive)
        per_class = metrics.per_class_f1(d.y, pred, task, n)
        summary["per_class_f1"] = {c: float(v) for c, v in zip(d.classes, per_class, strict=True)}
        summary["oof_confusion"] = (  # pooled out-of-fold counts at threshold 0.5, for `report`
            metrics.multilabel_confusion_matrix(d.y, pred)
            if task == "multilabel"
            else metrics.confusion_matrix(d.y, pred, n)
        ).tolist()
        if cv.tune_threshold and task in ("binary", "multilabel"):
            summary.update(self._tune(oof, positive))
        elif cv.tune_threshold and task == "multiclass":
            summary.update(self._tune_weights(oof))
        for key, val in summary.items():
            trial.set_user_attr(key, val)

        m = self.metric
        logged = {f"cv_{m}": value, f"cv_{m}_std": summary["cv_std"]}
        logged.update({f"fold{i}/best_{m}": v for i, v in enumerate(values)})
        logged.update({f"f1.{c}": v for c, v in summary["per_class_f1"].items()})
        if "threshold" in summary:
            logged["threshold"] = summary["threshold"]
        if "cv_value_tuned" in summary:
            logged[f"cv_{m}_tuned"] = summary["cv_value_tuned"]
        self.tracker.log_metrics(run, logged)
        self._log_best_fold(run, values, best_epochs, oof, positive)
        if len(outcomes) == len(self.folds) and self._log_fold_ensemble(
            run, [m.model for m in members]
        ):
            trial.set_user_attr("fold_ensemble", FOLD_ENSEMBLE_ARTIFACT)
        return value

    def _log_fold_ensemble(self, run: str | None, models: list[Any]) -> bool:
        """Save the K fold models (each at its best epoch) as one averaging model and upload
        it to the trial's MLflow run as :data:`FOLD_ENSEMBLE_ARTIFACT`, on the artifact
        thread; False when there is no run to keep it in."""
        if run is None:
            return False
        import shutil
        import tempfile
        from pathlib import Path

        from weightsearch import training
        from weightsearch.tracking import submit_artifact_job

        folder = Path(tempfile.mkdtemp(prefix="weightsearch-ensemble-"))
        path = folder / Path(FOLD_ENSEMBLE_ARTIFACT).name
        training.fold_ensemble(models).save(path)
        tracker = self.tracker

        def job() -> None:
            try:
                tracker.log_file(run, str(path), str(Path(FOLD_ENSEMBLE_ARTIFACT).parent))
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        submit_artifact_job(job, f"the fold ensemble of MLflow run {run}")
        return True

    def _tune(self, oof: np.ndarray, positive: int) -> dict[str, Any]:
        """Threshold tuned on pooled out-of-fold predictions, and an honest cross-fitted score.

        The cross-fitted score applies to fold k the threshold tuned on the other folds.
        """
        from weightsearch import metrics

        d = self.data
        kw = {"task": d.task, "metric": self.metric, "positive": positive}
        threshold, pooled = metrics.tune_threshold(d.y, oof, **kw)
        crossfit = metrics.cross_fit(
            d.y, oof, self.folds,
            fit=lambda y, p: metrics.tune_threshold(y, p, **kw)[0],
            evaluate=lambda y, p, t: metrics.score(
                self.metric, y, metrics.predict_labels(p, d.task, threshold=t, positive=positive),
                task=d.task, n_classes=d.n_classes, positive=positive),
        )
        return {
            "threshold": float(threshold),
            "cv_value_tuned": crossfit,
            "pooled_value_tuned": float(pooled),
        }

    def _tune_weights(self, oof: np.ndarray) -> dict[str, Any]:
        """Multiclass: per-class decision weights tuned on the pooled out-of-fold predictions,
        and their cross-fitted score (fold k decided with weights tuned on the other folds);
        the trial value stays the untuned score."""
        from weightsearch import metrics

        d = self.data
        kw = {"n_classes": d.n_classes, "metric": self.metric}
        weights, pooled = metrics.tune_decision_weights(d.y, oof, **kw)
        return {
            "decision_weights": [float(w) for w in weights],
            "cv_value_tuned": metrics.cross_fit_decision(d.y, oof, self.folds, **kw),
            "pooled_value_tuned": float(pooled),
        }

    def _log_best_fold(
        self,
        run: str | None,
        values: np.ndarray,
        best_epochs: list[int],
        oof: np.ndarray,
        positive: int,
    ) -> None:
        """Confusion matrix PNG and classification report of the best fold."""
        if run is None:
            return
        from weightsearch import artifacts

        best = int(np.argmax(values))
        _, va = self.folds[best]
        d = self.data
        artifacts.log_fold_artifacts(
            self.tracker,
            run,
            d.y[va],
            oof[va],
            task=d.task,
            classes=d.classes,
            positive=positive,
            title=f"fold {best} (best), epoch {best_epochs[best]}",
        )
