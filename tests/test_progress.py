"""The study's progress bar: the best value names its trial, and the last trial's note is
set apart from it."""

from __future__ import annotations

import io
from types import SimpleNamespace

from optuna.trial import TrialState
from rich.console import Console

from weightsearch.progress import StudyProgress


def _trial(number: int, state: TrialState, value: float | None = None, **attrs: str):
    return SimpleNamespace(number=number, state=state, value=value, user_attrs=attrs)


def test_the_bar_names_the_best_trial_and_sets_the_last_one_apart() -> None:
    bar = StudyProgress(Console(file=io.StringIO()), "macro_f1", folds=3, epochs=5)
    bar.start(4)
    fields = bar.bar.tasks[0].fields
    assert fields["best"] == "–"
    bar.epoch(0, None, 0)
    assert fields["now"] == "· running trial 0 · 3 folds · epoch 1"
    bar.epoch(0, 1, 2)
    assert fields["now"] == "· running trial 0 · fold 2/3 · epoch 3"
    bar.trial_done(None, _trial(0, TrialState.COMPLETE, 0.91))
    assert (fields["best"], fields["now"]) == ("0.9100 (trial 0)", "")
    bar.trial_done(None, _trial(1, TrialState.COMPLETE, 0.95))
    bar.trial_done(None, _trial(2, TrialState.PRUNED))
    assert (fields["best"], fields["now"]) == ("0.9500 (trial 1)", "· last: trial 2 pruned")
    bar.trial_done(None, _trial(3, TrialState.FAIL, error="ValueError: bad"))
    assert fields["now"] == "· last: trial 3 fail: ValueError: bad"
    assert bar.counts == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 1}
    bar.stop()


def test_a_resumed_study_shows_its_earlier_best_without_a_trial_number() -> None:
    bar = StudyProgress(Console(file=io.StringIO()), "macro_f1", folds=3, epochs=5)
    bar.start(2, best=0.875)
    assert bar.bar.tasks[0].fields["best"] == "0.8750"
    bar.trial_done(None, _trial(7, TrialState.COMPLETE, 0.85))  # not better: still the old best
    assert bar.bar.tasks[0].fields["best"] == "0.8750"
    bar.stop()
