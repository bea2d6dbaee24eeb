"""Optuna samplers by name: ``[search] sampler = "<name>"``.

Each entry is one function ``(seed, n_startup_trials) -> optuna.samplers.BaseSampler``,
registered with :func:`sampler`; its docstring says what it is and cites its source. Entries
that need an optional package name it in ``needs`` and are refused up front, by
:func:`check_available`, when it is missing. ``import optuna`` happens only when a sampler is
built.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from weightsearch._registry import Registry


@dataclass(frozen=True)
class Sampler:
    """A registered sampler: ``build(seed, n_startup_trials)`` and the packages it needs."""

    name: str
    build: Callable[[int, int], Any]
    needs: tuple[str, ...] = ()

    @property
    def doc(self) -> str:
        return (self.build.__doc__ or "").strip()


SAMPLERS: Registry[Sampler] = Registry("sampler")


def sampler(
    name: str, *, aliases: tuple[str, ...] = (), needs: tuple[str, ...] = ()
) -> Callable[[Callable[[int, int], Any]], Callable[[int, int], Any]]:
    """Register ``build(seed, n_startup_trials)`` as sampler ``name``."""

    def decorator(build: Callable[[int, int], Any]) -> Callable[[int, int], Any]:
        SAMPLERS.register(name, aliases=aliases)(Sampler(name, build, needs))
        return build

    return decorator


def missing(name: str) -> list[str]:
    """The optional packages sampler ``name`` needs that are not installed."""
    return [m for m in SAMPLERS.get(name).needs if importlib.util.find_spec(m) is None]


def check_available(name: str) -> None:
    """``ValueError`` if sampler ``name`` is unknown or needs a package that is missing."""
    gone = missing(name)
    if gone:
        usable = [n for n in SAMPLERS if not missing(n)]
        raise ValueError(
            f"{name!r} needs {', '.join(gone)}, which is not installed; use one of: "
            f"{', '.join(usable)} (or install {', '.join(gone)})."
        )


def make_sampler(name: str, *, seed: int, n_startup_trials: int = 10) -> Any:
    """Build sampler ``name`` (after :func:`check_available`)."""
    from weightsearch.compat import quiet_optuna

    check_available(name)
    quiet_optuna()
    return SAMPLERS.get(name).build(seed, n_startup_trials)


@sampler("tpe")
def tpe(seed: int, n_startup_trials: int) -> Any:
    """Tree-structured Parzen estimator, multivariate and grouped over conditional params
    (Bergstra et al., NeurIPS 2011; Falkner et al., ICML 2018); ``n_startup_trials`` random
    trials first."""
    import optuna

    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=n_startup_trials, multivariate=True, group=True
    )


@sampler("random")
def random(seed: int, n_startup_trials: int) -> Any:
    """Independent uniform draws from the space (Bergstra & Bengio, JMLR 2012)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@sampler("cmaes", aliases=("cma_es",))
def cmaes(seed: int, n_startup_trials: int) -> Any:
    """CMA-ES on the numeric parameters (Hansen, 2016); categorical ones are drawn at random."""
    import optuna

    return optuna.samplers.CmaEsSampler(
        seed=seed, n_startup_trials=n_startup_trials, warn_independent_sampling=False
    )


@sampler("qmc")
def qmc(seed: int, n_startup_trials: int) -> Any:
    """Scrambled Sobol quasi-Monte-Carlo points, spread more evenly than random ones
    (Sobol', 1967; Owen, 1998)."""
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


@sampler("nsga2", aliases=("nsga_ii",))
def nsga2(seed: int, n_startup_trials: int) -> Any:
    """NSGA-II genetic search (Deb et al., IEEE TEC 2002)."""
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


@sampler("gp", needs=("torch",))
def gp(seed: int, n_startup_trials: int) -> Any:
    """Gaussian-process Bayesian optimisation with log expected improvement (Optuna's
    GPSampler; Jones et al., 1998). Needs PyTorch."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


__all__ = ["SAMPLERS", "Sampler", "check_available", "make_sampler", "missing", "sampler"]
