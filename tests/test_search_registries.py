"""The sampler and pruner registries, every entry: documented, buildable, and doing its job
on a cheap pure-Python study; then one real objective with the Wilcoxon pruner."""

from __future__ import annotations

import importlib.util
from typing import Any

import optuna
import pytest

from weightsearch import pruners, samplers
from weightsearch.pruners import PRUNERS, make_pruner
from weightsearch.samplers import SAMPLERS, make_sampler

optuna.logging.set_verbosity(optuna.logging.ERROR)


def cheap(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    n = trial.suggest_int("n", 1, 5)
    c = trial.suggest_categorical("c", ["a", "b", "c"])
    return -((x - 0.3) ** 2) - 0.1 * (n - 2) ** 2 + (0.5 if c == "b" else 0.0)


def sampled(name: str, seed: int) -> list[dict[str, Any]]:
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(name, seed=seed, n_startup_trials=2)
    )
    study.optimize(cheap, n_trials=6)
    return [t.params for t in study.trials]


# ---- samplers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_is_documented(name: str) -> None:
    entry = SAMPLERS.get(name)
    assert entry.name == name and len(entry.doc) > 20, entry.doc


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_runs_reproducibly_or_is_refused(name: str) -> None:
    needs = SAMPLERS.get(name).needs
    gone = [m for m in needs if importlib.util.find_spec(m) is None]
    assert samplers.missing(name) == gone
    if gone:  # e.g. gp needs torch: refused up front, naming the package, never built
        for call in (lambda: samplers.check_available(name),
                     lambda: make_sampler(name, seed=0)):
            with pytest.raises(ValueError) as info:
                call()
            message = str(info.value)
            assert message.startswith(f"{name!r} needs {', '.join(gone)}, which is not installed")
            usable = [n for n in SAMPLERS if not samplers.missing(n)]
            assert f"use one of: {', '.join(usable)} (or install {', '.join(gone)})" in message
        return
    samplers.check_available(name)
    first = sampled(name, seed=3)
    assert len(first) == 6
    assert all(-1 <= p["x"] <= 1 and 1 <= p["n"] <= 5 and p["c"] in "abc" for p in first)
    assert sampled(name, seed=3) == first  # same seed, same trials
    assert sampled(name, seed=4) != first


@pytest.mark.parametrize("alias", list(SAMPLERS.aliases()))
def test_sampler_aliases_build_their_target(alias: str) -> None:
    target = SAMPLERS.aliases()[alias]
    if samplers.missing(target):
        pytest.skip(f"{target} needs {samplers.missing(target)}")
    built = make_sampler(alias, seed=0)
    assert type(built) is type(make_sampler(target, seed=0))


# ---- pruners -------------------------------------------------------------------------------

EPOCHS = 4
FOLDS = 5
GOOD_TRIALS = 6


def curve(name: str, good: bool, k: int) -> list[float]:
    """What a trial reports to pruner ``name``: one value per epoch (step = epoch) or per
    fold (step = fold index); good trials improve with ``k``, bad ones are far below."""
    if pruners.reports(name) == "folds":
        return [(0.8 + 0.01 * k + 0.02 * i) if good else 0.1 + 0.01 * i for i in range(FOLDS)]
    return [(0.5 + 0.1 * e + 0.01 * k) if good else 0.05 for e in range(EPOCHS)]


def run_trials(name: str, goods: list[bool], folds: int = FOLDS) -> list[int | None]:
    """Ask, report and tell one trial per entry of ``goods``; the step each was pruned at."""
    steps = folds if pruners.reports(name) == "folds" else EPOCHS
    pruner = make_pruner(name, epochs=EPOCHS, steps=steps, n_startup_trials=2)
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name=f"p-{name}")
    out: list[int | None] = []
    for k, good in enumerate(goods):
        trial = study.ask()
        values = curve(name, good, k)[:steps]
        at = None
        for step, value in enumerate(values):
            trial.report(value, step)
            if trial.should_prune():
                at = step
                break
        if at is None:
            study.tell(trial, sum(values) / len(values))
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        out.append(at)
    return out


@pytest.mark.parametrize("name", list(PRUNERS))
def test_every_pruner_is_documented_and_says_what_it_is_reported(name: str) -> None:
    entry = PRUNERS.get(name)
    assert entry.name == name and len(entry.doc) > 20, entry.doc
    assert pruners.reports(name) in pruners.REPORTS


@pytest.mark.parametrize("name", list(PRUNERS))
def test_every_pruner_prunes_a_clearly_bad_trial_after_good_ones(name: str) -> None:
    pruned = run_trials(name, [True] * GOOD_TRIALS + [False])
    assert pruned[:-1] == [None] * GOOD_TRIALS  # improving trials run to the end
    if pruners.reports(name) == "none":
        # reported to or not, a pruner that is told nothing prunes nothing
        assert pruned[-1] is None
    elif pruners.reports(name) == "folds":
        # Wilcoxon: the exact one-sided p of n folds all worse is 1/2^n, below 0.1 from the
        # 4th fold (index 3), so that is where it stops
        assert pruned[-1] == 3
    else:
        # never judged on its first epoch alone (make_pruner's warm-up); Hyperband compares
        # only within a trial's bracket (a hash of study name and number): with this study
        # name the bad trial's bracket holds good ones
        assert pruned[-1] is not None and 1 <= pruned[-1] < EPOCHS


@pytest.mark.parametrize("name", [n for n in PRUNERS if pruners.reports(n) == "none"])
def test_a_pruner_told_nothing_never_prunes_even_when_reported_to(name: str) -> None:
    pruner = make_pruner(name, epochs=EPOCHS, steps=EPOCHS, n_startup_trials=0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.9, 0.9, 0.0):
        trial = study.ask()
        for step in range(EPOCHS):
            trial.report(value, step)
            assert not trial.should_prune()
        study.tell(trial, value)


@pytest.mark.parametrize("name", [n for n in PRUNERS if pruners.reports(n) == "folds"])
@pytest.mark.parametrize("folds", [2, 3])
def test_a_fold_pruner_cannot_prune_with_three_folds_or_fewer(name: str, folds: int) -> None:
    # 1/2^3 = 0.125 > 0.1: with so few folds even a clearly bad trial completes
    assert run_trials(name, [True, True, False], folds=folds) == [None, None, None]


@pytest.mark.parametrize("name", [n for n in PRUNERS if pruners.reports(n) == "epochs"])
def test_an_epoch_pruner_waits_for_earlier_trials(name: str) -> None:
    # alone in its study, the bad trial has nothing to be compared with
    assert run_trials(name, [False]) == [None]


# ---- one real objective ----------------------------------------------------------------------


def test_the_wilcoxon_pruner_gets_one_value_per_fold(tiny_spec) -> None:
    """The real objective on a tiny spec: one value per fold, at steps 0..folds-1, equal to
    the fold values it records, with folds trained in turn."""
    from weightsearch import engines
    from weightsearch import spec as spec_mod
    from weightsearch.objective import Objective
    from weightsearch.tracking import NullTracker

    s = spec_mod.load(tiny_spec(name="wilcoxon", n_trials=1, pruner="wilcoxon"))
    assert s.search.pruner == "wilcoxon" and pruners.reports("wilcoxon") == "folds"
    prepared = engines.prepare(s)
    pruner = make_pruner("wilcoxon", epochs=s.cv.epochs, steps=s.cv.folds)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.optimize(Objective(s, prepared.train, prepared.space, NullTracker()), n_trials=1)

    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE  # two folds cannot be pruned
    values = trial.user_attrs["fold_values"]
    assert len(values) == s.cv.folds == 2
    assert trial.intermediate_values == dict(enumerate(values))
    assert trial.value == pytest.approx(sum(values) / len(values))
    assert trial.user_attrs["parallel_folds"] is False
    assert "wilcoxon" in trial.user_attrs["parallel_folds_reason"]
