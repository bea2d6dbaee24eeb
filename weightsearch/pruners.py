"""Optuna pruners by name: ``[search] pruner = "<name>"``.

Each entry is one function ``(n_startup_trials, warmup, max_resource) -> BasePruner``,
registered with :func:`pruner`; its docstring says what it does and cites its source.
``reports`` says what the objective reports to it:

- ``"epochs"``: one value per epoch (step = epoch with folds side by side; fold k's epoch e
  at step k·epochs + e with folds in turn);
- ``"folds"``: one value per fold, at step k (the Wilcoxon pruner compares folds);
- ``"none"``: nothing.

``import optuna`` happens only when a pruner is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weightsearch._registry import Registry

REPORTS = ("epochs", "folds", "none")


@dataclass(frozen=True)
class Pruner:
    """A registered pruner: ``build(n_startup_trials, warmup, max_resource)`` and what the
    objective reports to it (``reports``, one of :data:`REPORTS`)."""

    name: str
    build: Callable[[int, int, int], Any]
    reports: str = "epochs"

    @property
    def doc(self) -> str:
        return (self.build.__doc__ or "").strip()


PRUNERS: Registry[Pruner] = Registry("pruner")


def pruner(
    name: str, *, aliases: tuple[str, ...] = (), reports: str = "epochs"
) -> Callable[[Callable[[int, int, int], Any]], Callable[[int, int, int], Any]]:
    """Register ``build(n_startup_trials, warmup, max_resource)`` as pruner ``name``."""
    if reports not in REPORTS:
        raise ValueError(f"reports must be one of {', '.join(REPORTS)}, but got {reports!r}.")

    def decorator(build: Callable[[int, int, int], Any]) -> Callable[[int, int, int], Any]:
        PRUNERS.register(name, aliases=aliases)(Pruner(name, build, reports))
        return build

    return decorator


def reports(name: str) -> str:
    """What the objective reports to pruner ``name``: ``"epochs"``, ``"folds"`` or ``"none"``."""
    return PRUNERS.get(name).reports


def make_pruner(name: str, *, epochs: int, steps: int, n_startup_trials: int = 10) -> Any:
    """Build pruner ``name`` for trials of ``epochs`` epochs that report ``steps`` steps.

    Warm-up: a trial is never judged on its first epoch alone, ``min(1, epochs − 1)``.
    Replays of the median pruner over unpruned studies (BENCHMARKS.md, B3) killed no top-3
    trial at any warm-up from 0 to 8 steps; the warm-up only decides how early a doomed
    trial stops."""
    from weightsearch.compat import quiet_optuna

    quiet_optuna()
    return PRUNERS.get(name).build(n_startup_trials, min(1, epochs - 1), steps)


@pruner("none", aliases=("nop",), reports="none")
def none(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """No pruning: every trial trains all its epochs (Optuna's NopPruner)."""
    import optuna

    return optuna.pruners.NopPruner()


@pruner("median")
def median(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """Stop a trial whose best value so far is below the median of earlier trials at the
    same step (Golovin et al., "Google Vizier", KDD 2017)."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup)


@pruner("percentile")
def percentile(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """Stop a trial below the 25th percentile of earlier trials at the same step (a
    stricter-to-survive median rule; Optuna's PercentilePruner)."""
    import optuna

    return optuna.pruners.PercentilePruner(
        25.0, n_startup_trials=n_startup_trials, n_warmup_steps=warmup
    )


@pruner("hyperband")
def hyperband(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """Hyperband: successive halving over several brackets, resource = steps (Li et al.,
    JMLR 2018)."""
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)


@pruner("successive_halving", aliases=("asha", "sha"))
def successive_halving(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """Asynchronous successive halving: keep the top 1/η at each rung (Li et al., "A
    System for Massively Parallel Hyperparameter Tuning", MLSys 2020)."""
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner()


@pruner("wilcoxon", reports="folds")
def wilcoxon(n_startup_trials: int, warmup: int, max_resource: int) -> Any:
    """Stop a trial whose per-fold scores are significantly below the best trial's, by a
    Wilcoxon signed-rank test at p < 0.1 (Optuna's WilcoxonPruner; Wilcoxon, 1945)."""
    import optuna

    return optuna.pruners.WilcoxonPruner(p_threshold=0.1)


__all__ = ["PRUNERS", "REPORTS", "Pruner", "make_pruner", "pruner", "reports"]
