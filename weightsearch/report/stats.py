"""Paired tests of one trial's per-fold scores against the baseline's, on the same CV folds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The significance level of every verdict.
ALPHA = 0.05


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon signed-rank test can give on ``n``
    non-zero paired differences: ``2 / 2**n`` (all differences of one sign)."""
    return min(1.0, 2.0 ** (1 - n)) if n > 0 else 1.0


def nadeau_bengio(diffs: Any, test_train_ratio: float) -> tuple[float, float]:
    """Nadeau–Bengio corrected resampled t-test on per-fold differences ``diffs``.

    ``t = mean(d) / sqrt((1/k + n_test/n_train) · var(d))`` with ``var`` the sample variance
    (ddof 1) and ``k - 1`` degrees of freedom; two-sided p. The correction accounts for the
    overlap of the training sets across folds, which makes the plain paired t-test far too
    optimistic (Nadeau & Bengio, 2003; Bouckaert & Frank, 2004). For k-fold CV,
    ``n_test/n_train = 1/(k-1)``. Returns ``(nan, nan)`` when it is undefined (fewer than two
    folds, or every fold differs by the same amount).
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    k = len(d)
    if k < 2:
        return math.nan, math.nan
    mean, var = float(d.mean()), float(d.var(ddof=1))
    if var <= 0.0:
        return (math.nan, 1.0) if mean == 0.0 else (math.nan, math.nan)
    t = mean / math.sqrt((1.0 / k + test_train_ratio) * var)
    p = float(2.0 * stats.t.sf(abs(t), df=k - 1))
    return float(t), p


def wilcoxon_p(diffs: Any) -> float:
    """Two-sided Wilcoxon signed-rank p-value (zero differences dropped; 1.0 if all zero)."""
    import warnings

    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    if not np.any(d != 0.0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


@dataclass
class PairedTest:
    """A trial's per-fold scores set against the baseline's, on the same folds."""

    k: int  # folds paired
    mean_diff: float  # mean over folds of (trial − baseline)
    wins: int  # folds where the trial beats the baseline
    losses: int
    wilcoxon_p: float
    wilcoxon_min_p: float  # the smallest p the test could give with these folds
    nb_t: float
    nb_p: float
    verdict: str
    note: str = ""


def paired_test(
    a: list[float], b: list[float], test_train_ratio: float | None = None
) -> PairedTest:
    """Compare per-fold scores ``a`` (a trial) with ``b`` (the baseline), fold by fold.

    The folds are paired: every trial of a study is cross-validated on the same stratified
    folds (same data, same seed). ``test_train_ratio`` defaults to ``1/(k-1)`` (k-fold CV).
    The verdict uses the Nadeau–Bengio test at α = :data:`ALPHA`.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same number of folds, but got {len(a)} and {len(b)}.")
    k = len(a)
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    ratio = test_train_ratio if test_train_ratio is not None else 1.0 / max(k - 1, 1)
    nonzero = int(np.count_nonzero(d))
    w_p, w_min = wilcoxon_p(d), wilcoxon_min_p(nonzero)
    t, p = nadeau_bengio(d, ratio)
    notes = []
    if w_min > ALPHA:
        notes.append(
            f"with {nonzero} non-zero fold difference(s) Wilcoxon cannot go below p = {w_min:.3g}"
        )
    if math.isnan(p):
        notes.append("t-test undefined (every fold differs by the same amount)")
    mean = float(d.mean())
    if not math.isnan(p) and p < ALPHA and mean != 0.0:
        verdict = "better" if mean > 0 else "worse"
    else:
        verdict = "within noise"
    return PairedTest(
        k=k,
        mean_diff=mean,
        wins=int(np.sum(d > 0)),
        losses=int(np.sum(d < 0)),
        wilcoxon_p=w_p,
        wilcoxon_min_p=w_min,
        nb_t=t,
        nb_p=p,
        verdict=verdict,
        note="; ".join(notes),
    )
