"""What won, and is its gain over the unweighted baseline beyond noise?

Pure functions over Optuna ``FrozenTrial``s (testable without training): trials grouped by
weighting scheme or loss, each group's best trial set against the baseline's folds, and the
per-class F1 of the best trial against the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weightsearch.base import COMPONENT_KEYS
from weightsearch.report.stats import PairedTest, paired_test

BASELINE_SCHEME = "none"
BASELINE_LOSS = "crossentropy"
#: How the report names the baseline combination.
BASELINE = f"{BASELINE_SCHEME} + {BASELINE_LOSS}"
NO_BASELINE = f"baseline ({BASELINE}) was never tried"
#: What a comparison groups by → the space section whose component it is.
GROUPS = {"scheme": "weighting", "loss": "loss"}
#: Trial states a comparison counts.
COUNTED_STATES = ("COMPLETE", "PRUNED", "FAIL")


def state_name(t: Any) -> str:
    """A trial's state as a name (``"COMPLETE"``, ``"PRUNED"``, ...)."""
    return getattr(t.state, "name", str(t.state))


def complete_trials(trials: list[Any]) -> list[Any]:
    """The COMPLETE trials that have a value."""
    return [t for t in trials if state_name(t) == "COMPLETE" and t.value is not None]


def component(t: Any, by: str) -> str:
    """A trial's weighting scheme (``by="scheme"``) or loss (``by="loss"``): from its stored
    config, else from its Optuna param ``<section>.<choice key>``."""
    section = GROUPS[by]
    key = COMPONENT_KEYS[section]
    part = t.user_attrs.get("config", {}).get(section, {})
    return str(part.get(key, t.params.get(f"{section}.{key}", "?")))


def best_trial(trials: list[Any]) -> Any | None:
    """The best COMPLETE trial (the lowest number among ties), or ``None``."""
    done = complete_trials(trials)
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def find_baseline(trials: list[Any]) -> Any | None:
    """The best COMPLETE trial with scheme ``none`` and loss ``crossentropy``, or ``None``."""
    return best_trial(
        [
            t
            for t in trials
            if component(t, "scheme") == BASELINE_SCHEME and component(t, "loss") == BASELINE_LOSS
        ]
    )


def fold_values(t: Any) -> list[float]:
    """A trial's per-fold CV scores (empty when it stored none)."""
    return [float(v) for v in t.user_attrs.get("fold_values", [])]


# ---- the comparison table ------------------------------------------------------------------


@dataclass
class ComparisonRow:
    """One weighting scheme (or loss): its trials, its best trial, and that trial vs the
    baseline."""

    by: str  # "scheme" or "loss"
    name: str
    n_complete: int
    n_pruned: int
    n_failed: int
    best: float | None
    median: float | None
    best_trial: int | None
    partner: str = ""  # the best trial's loss (scheme rows) or scheme (loss rows)
    best_folds: list[float] = field(default_factory=list)
    baseline_trial: int | None = None
    baseline_folds: list[float] | None = None
    test: PairedTest | None = None
    note: str = ""


def comparison_rows(trials: list[Any], by: str, baseline: Any | None = None) -> list[ComparisonRow]:
    """One row per weighting scheme (``by="scheme"``) or loss (``by="loss"``), best first.

    ``baseline`` defaults to :func:`find_baseline` over ``trials``. Groups seen only in
    pruned or failed trials come last.
    """
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, but got {by!r}.")
    if baseline is None:
        baseline = find_baseline(trials)
    base_folds = fold_values(baseline) if baseline is not None else None
    groups: dict[str, list[Any]] = {}
    for t in trials:
        if state_name(t) in COUNTED_STATES:
            groups.setdefault(component(t, by), []).append(t)
    partner_by = next(g for g in GROUPS if g != by)
    rows = []
    for name, members in groups.items():
        done = complete_trials(members)
        best = best_trial(members)
        row = ComparisonRow(
            by=by,
            name=name,
            n_complete=len(done),
            n_pruned=sum(state_name(t) == "PRUNED" for t in members),
            n_failed=sum(state_name(t) == "FAIL" for t in members),
            best=None if best is None else float(best.value),
            median=float(np.median([t.value for t in done])) if done else None,
            best_trial=None if best is None else best.number,
            partner="" if best is None else component(best, partner_by),
            best_folds=fold_values(best) if best is not None else [],
            baseline_trial=None if baseline is None else baseline.number,
            baseline_folds=base_folds,
        )
        if best is None:
            row.note = "no complete trial"
        elif baseline is None:
            row.note = "no baseline"
        elif best.number == baseline.number:
            row.note = "its best trial is the baseline"
        elif len(row.best_folds) != len(base_folds or []) or not row.best_folds:
            row.note = "fold counts differ from the baseline's: no paired test"
        else:
            row.test = paired_test(row.best_folds, base_folds or [])
            row.note = row.test.note
        rows.append(row)
    rows.sort(key=lambda r: (r.best is None, -(r.best or 0.0), r.name))
    return rows


# ---- per-class F1: where does weighting help the minority and cost the majority? ----------


@dataclass
class ClassRow:
    name: str
    support: int | None  # rows of the class (positives of the label) in the search data
    best: float
    baseline: float | None

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.best - self.baseline


def class_support(t: Any) -> list[int] | None:
    """Per-class row counts (per-label positives) from the trial's out-of-fold confusion."""
    cm = t.user_attrs.get("oof_confusion")
    if not cm:
        return None
    m = np.asarray(cm)
    if m.ndim == 3:  # (L, 2, 2) per label: positives = FN + TP
        return [int(v) for v in m[:, 1, :].sum(axis=1)]
    return [int(v) for v in m.sum(axis=1)]


def per_class_rows(best: Any, baseline: Any | None) -> list[ClassRow]:
    """Per-class F1 of the best trial against the baseline, rarest class first."""
    f1 = best.user_attrs.get("per_class_f1", {})
    base = baseline.user_attrs.get("per_class_f1", {}) if baseline is not None else {}
    support = class_support(best) or (class_support(baseline) if baseline is not None else None)
    rows = [
        ClassRow(
            name=name,
            support=support[i] if support and i < len(support) else None,
            best=float(v),
            baseline=float(base[name]) if name in base else None,
        )
        for i, (name, v) in enumerate(f1.items())
    ]
    if all(r.support is not None for r in rows):
        rows.sort(key=lambda r: (r.support, r.name))
    return rows
