"""Tables, statistics and plots of studies and trials.

The per-trial artifacts (used by the objective) live in :mod:`weightsearch.artifacts`.
This is the ``report`` command: a leaderboard, a comparison of every weighting scheme and
loss with the unweighted baseline (paired tests over the CV folds), per-class F1, PNG plots,
a one-page ``report.html``, all logged to the study's MLflow parent run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.artifacts import confusion_figure


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ==== study report: what won, and is the gain over the unweighted baseline beyond noise? ====
#
# Everything below analyses a finished study. The computations are pure functions over Optuna
# FrozenTrials, so they are testable without training; ``build_report`` adds the plots, the
# HTML page and the MLflow artifacts.

BASELINE_SCHEME = "none"
BASELINE_LOSS = "crossentropy"
NO_BASELINE = "baseline (none + crossentropy) was never tried"
ALPHA = 0.05
GROUPS = {"scheme": ("weighting", "scheme"), "loss": ("loss", "name")}
#: The files a report directory holds, in display order.
FIGURES = {
    "history": "optimization_history.png",
    "importances": "param_importances.png",
    "by_component": "f1_by_scheme_and_loss.png",
    "per_class": "per_class_f1.png",
    "confusion": "confusion_best.png",
}
HTML_NAME = "report.html"


class ReportError(ValueError):
    """A report cannot be made (unknown study, missing storage): one line saying why."""


def _state(t: Any) -> str:
    return getattr(t.state, "name", str(t.state))


def complete_trials(trials: list[Any]) -> list[Any]:
    """The COMPLETE trials that have a value."""
    return [t for t in trials if _state(t) == "COMPLETE" and t.value is not None]


def component(t: Any, by: str) -> str:
    """A trial's weighting scheme (``by="scheme"``) or loss (``by="loss"``)."""
    section, key = GROUPS[by]
    part = t.user_attrs.get("config", {}).get(section, {})
    return str(part.get(key, t.params.get(f"{section}.{key}", "?")))


def _best(trials: list[Any]) -> Any | None:
    done = complete_trials(trials)
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def best_trial(trials: list[Any]) -> Any | None:
    """The best COMPLETE trial (the lowest number among ties), or ``None``."""
    return _best(trials)


def find_baseline(trials: list[Any]) -> Any | None:
    """The best COMPLETE trial with scheme ``none`` and loss ``crossentropy``, or ``None``."""
    return _best(
        [
            t
            for t in trials
            if component(t, "scheme") == BASELINE_SCHEME and component(t, "loss") == BASELINE_LOSS
        ]
    )


def fold_values(t: Any) -> list[float]:
    return [float(v) for v in t.user_attrs.get("fold_values", [])]


# ---- paired tests over the CV folds --------------------------------------------------------


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
    The verdict uses the Nadeau–Bengio test at α = 0.05.
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
        if _state(t) in ("COMPLETE", "PRUNED", "FAIL"):
            groups.setdefault(component(t, by), []).append(t)
    rows = []
    for name, members in groups.items():
        done = complete_trials(members)
        best = _best(members)
        row = ComparisonRow(
            by=by,
            name=name,
            n_complete=len(done),
            n_pruned=sum(_state(t) == "PRUNED" for t in members),
            n_failed=sum(_state(t) == "FAIL" for t in members),
            best=None if best is None else float(best.value),
            median=float(np.median([t.value for t in done])) if done else None,
            best_trial=None if best is None else best.number,
            partner="" if best is None else component(best, "loss" if by == "scheme" else "scheme"),
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


def _f(value: float | None, digits: int = 4) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


COMPARISON_HEADERS = (
    "trials",
    "best",
    "median",
    "best trial",
    "its folds",
    "baseline folds",
    "Δ mean",
    "wins",
    "Wilcoxon p (min)",
    "NB p",
    "verdict",
)


def format_comparison(
    rows: list[ComparisonRow], compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Headers and string cells of a comparison table (shared by the terminal and HTML).

    ``compact=True`` (the terminal) leaves out the baseline's folds, the same on every row,
    and the Wilcoxon floor where it is the usual one for the fold count; both are printed
    once by :func:`terminal_renderables`.
    """
    by = rows[0].by if rows else "scheme"
    out = []
    for r in rows:
        extra = [f"+{r.n_pruned} pruned"] if r.n_pruned else []
        extra += [f"{r.n_failed} failed"] if r.n_failed else []
        trials = str(r.n_complete) + (f" ({', '.join(extra)})" if extra else "")
        folds = " ".join(f"{v:.3f}" for v in r.best_folds) or "–"
        is_base = r.best_trial is not None and r.best_trial == r.baseline_trial
        if r.baseline_folds is None:
            base = "never tried"
        elif is_base:
            base = "(is the baseline)"
        else:
            base = " ".join(f"{v:.3f}" for v in r.baseline_folds)
        t = r.test
        if t is None:
            cells = ["–", "–", "–", "–", r.note or "–"]
        else:
            floor = (
                ""
                if compact and t.wilcoxon_min_p == wilcoxon_min_p(t.k)
                else (f" ({_p(t.wilcoxon_min_p)})")
            )
            cells = [
                f"{t.mean_diff:+.4f}",
                f"{t.wins}/{t.k}",
                _p(t.wilcoxon_p) + floor,
                _p(t.nb_p),
                t.verdict,
            ]
        trial = "–" if r.best_trial is None else f"{r.best_trial} ({r.partner})"
        row = [r.name, trials, _f(r.best), _f(r.median), trial, folds, base, *cells]
        if compact:
            row.pop(6)
            if is_base:
                row[4] += ", the baseline"
        out.append(row)
    headers = [by, *COMPARISON_HEADERS]
    if compact:
        headers.pop(6)
        headers[headers.index("Wilcoxon p (min)")] = "Wilcoxon p"
    return headers, out


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


def format_per_class(rows: list[ClassRow]) -> tuple[list[str], list[list[str]]]:
    headers = ["class", "support", "best trial F1", "baseline F1", "Δ"]
    out = [
        [
            r.name,
            "–" if r.support is None else str(r.support),
            _f(r.best),
            _f(r.baseline) if r.baseline is not None else "never tried",
            "–" if r.delta is None else f"{r.delta:+.4f}",
        ]
        for r in rows
    ]
    return headers, out


# ---- the whole analysis ----------------------------------------------------------------------


@dataclass
class StudyReport:
    """What ``report`` prints and writes (see :func:`analyse`)."""

    study_name: str
    description: str
    metric: str
    engine: str
    folds: int | None
    states: dict[str, int]
    leaderboard: list[dict[str, Any]]
    best: Any | None
    baseline: Any | None
    schemes: list[ComparisonRow]
    losses: list[ComparisonRow]
    per_class: list[ClassRow]
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    mlflow_run_id: str | None = None
    mlflow_note: str = ""

    @property
    def baseline_note(self) -> str:
        if self.baseline is None:
            return NO_BASELINE + ": no paired tests."
        folds = " ".join(f"{v:.3f}" for v in fold_values(self.baseline))
        return (
            f"baseline: trial {self.baseline.number} (none + crossentropy), "
            f"CV {self.metric} {self.baseline.value:.4f}, folds {folds}"
        )


def _engine_name(spec: dict[str, Any], trials: list[Any]) -> str:
    engine = spec.get("search", {}).get("engine", "optuna")
    algos = {t.user_attrs.get("kt_algorithm") for t in trials} - {None}
    if engine == "keras-tuner" and algos:
        from weightsearch.engines.keras_tuner import ORACLE_NAMES

        return f"{engine} ({', '.join(ORACLE_NAMES.get(a, a) for a in sorted(algos))})"
    if engine == "optuna":
        s = spec.get("search", {})
        return f"optuna ({s.get('sampler', '?')} sampler, {s.get('pruner', '?')} pruner)"
    return engine


def analyse(study: Any, top: int = 10) -> StudyReport:
    """Tables and statistics of a study (no files, no MLflow)."""
    from weightsearch.study import leaderboard

    trials = list(study.trials)
    spec = study.user_attrs.get("spec", {}) or {}
    states: dict[str, int] = {}
    for t in trials:
        states[_state(t)] = states.get(_state(t), 0) + 1
    best, baseline = best_trial(trials), find_baseline(trials)
    return StudyReport(
        study_name=study.study_name,
        description=str(spec.get("description", "") or ""),
        metric=study.user_attrs.get("metric", spec.get("cv", {}).get("metric", "macro_f1")),
        engine=_engine_name(spec, trials),
        folds=spec.get("cv", {}).get("folds"),
        states=states,
        leaderboard=leaderboard(study, top=top),
        best=best,
        baseline=baseline,
        schemes=comparison_rows(trials, "scheme", baseline),
        losses=comparison_rows(trials, "loss", baseline),
        per_class=per_class_rows(best, baseline) if best is not None else [],
    )


# ---- figures -------------------------------------------------------------------------------


def placeholder_figure(title: str, reason: str) -> Any:
    """A figure that says why the real plot could not be drawn."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.45, reason, ha="center", va="center", wrap=True, fontsize=10, color="0.3")
    return fig


@contextmanager
def _optuna_plotting() -> Iterator[None]:
    """Optuna's matplotlib plots: no experimental warnings, and their ``ggplot`` style kept
    from leaking into the other figures (they call ``plt.style.use``)."""
    import warnings

    import matplotlib
    import optuna

    _pyplot()
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def history_figure(study: Any, metric: str = "macro_f1") -> Any:
    """Optuna's optimisation history (value per trial and best so far)."""
    title = "Optimisation history"
    if not complete_trials(study.trials):
        return placeholder_figure(title, "no complete trial yet")
    from optuna.visualization.matplotlib import plot_optimization_history

    with _optuna_plotting():
        ax = plot_optimization_history(study, target_name=f"CV {metric}")
    fig = ax.figure
    fig.set_size_inches(7, 4)
    fig.tight_layout()
    return fig


def importance_figure(study: Any, seed: int = 0) -> Any:
    """Optuna's fANOVA hyperparameter importances (parameters every complete trial has)."""
    title = "Hyperparameter importances"
    done = complete_trials(study.trials)
    if len(done) < 2:
        return placeholder_figure(title, f"needs at least 2 complete trials, got {len(done)}")
    if len({t.value for t in done}) < 2:
        return placeholder_figure(title, "every complete trial has the same value")
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_param_importances

    try:
        with _optuna_plotting():
            ax = plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    except Exception as exc:  # e.g. no parameter varies across the complete trials
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return placeholder_figure(title, f"not computable: {first}")
    fig = ax.figure
    if not ax.patches:
        _pyplot().close(fig)
        return placeholder_figure(title, "no parameter varies across the complete trials")
    fig.set_size_inches(7, max(3.0, 0.35 * len(ax.patches) + 1.5))
    fig.tight_layout()
    return fig


def component_figure(trials: list[Any], metric: str = "macro_f1", seed: int = 0) -> Any:
    """CV score of every complete trial by weighting scheme and by loss (box + points)."""
    done = complete_trials(trials)
    if not done:
        return placeholder_figure(f"CV {metric} by scheme and by loss", "no complete trial yet")
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, by in zip(axes, ("scheme", "loss"), strict=True):
        groups: dict[str, list[float]] = {}
        for t in done:
            groups.setdefault(component(t, by), []).append(float(t.value))
        names = sorted(groups, key=lambda n: -max(groups[n]))
        data = [groups[n] for n in names]
        ax.boxplot(data, widths=0.5, showfliers=False)
        for i, vals in enumerate(data, 1):
            x = i + rng.uniform(-0.12, 0.12, len(vals))
            ax.scatter(x, vals, s=16, alpha=0.7, color="C1", zorder=3)
        ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(groups[n])})" for n in names])
        ax.set_title(f"by {'weighting scheme' if by == 'scheme' else 'loss'}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"CV {metric}")
    fig.suptitle(f"CV {metric} of every complete trial")
    fig.tight_layout()
    return fig


def per_class_figure(rows: list[ClassRow], best: Any, baseline: Any | None) -> Any:
    """Per-class F1 of the best trial next to the baseline's, rarest class first."""
    title = "Per-class F1 (out-of-fold)"
    if not rows:
        return placeholder_figure(title, "the best trial has no per-class F1")
    plt = _pyplot()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * n + 2), 4))
    x = np.arange(n)
    width = 0.4 if baseline is not None else 0.6
    combo = f"{component(best, 'scheme')} + {component(best, 'loss')}"
    best_label = f"best: trial {best.number} ({combo})"
    if baseline is not None:
        ax.bar(x - width / 2, [r.best for r in rows], width, label=best_label, color="C0")
        ax.bar(
            x + width / 2,
            [r.baseline if r.baseline is not None else 0.0 for r in rows],
            width,
            label=f"baseline: trial {baseline.number} (none + crossentropy)",
            color="0.65",
        )
    else:
        ax.bar(x, [r.best for r in rows], width, label=best_label, color="C0")
        ax.text(0.5, 1.02, NO_BASELINE, transform=ax.transAxes, ha="center", fontsize=9, color="C3")
    labels = [r.name if r.support is None else f"{r.name}\n(n={r.support})" for r in rows]
    ax.set_xticks(x, labels, rotation=0 if n <= 8 else 45, ha="center" if n <= 8 else "right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title + (", rarest class first" if rows[0].support is not None else ""), pad=16)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def best_confusion_figure(best: Any | None) -> Any:
    """Pooled out-of-fold confusion matrix of the best trial (threshold 0.5)."""
    title = "Confusion matrix of the best trial"
    if best is None:
        return placeholder_figure(title, "no complete trial yet")
    cm = best.user_attrs.get("oof_confusion")
    if not cm:
        return placeholder_figure(
            title, "this trial stored no out-of-fold confusion (run by an older weightsearch)"
        )
    classes = list(best.user_attrs.get("per_class_f1", {}))
    m = np.asarray(cm, dtype=np.int64)
    rule = "argmax" if m.ndim == 2 and len(m) > 2 else "threshold 0.5"
    heading = f"Best trial ({best.number}): pooled out-of-fold confusion\n({rule})"
    if m.ndim == 3:  # multilabel (L, 2, 2) → one row per label: TN FP FN TP
        return confusion_figure(
            m.reshape(len(m), 4), ["TN", "FP", "FN", "TP"], heading,
            row_labels=classes or [str(i) for i in range(len(m))],
            xlabel="outcome", ylabel="label",
        )
    return confusion_figure(m, classes or [str(i) for i in range(len(m))], heading)


def make_figures(study: Any, rep: StudyReport) -> dict[str, Any]:
    """Every report figure, keyed like :data:`FIGURES`."""
    trials = list(study.trials)
    return {
        "history": history_figure(study, rep.metric),
        "importances": importance_figure(study),
        "by_component": component_figure(trials, rep.metric),
        "per_class": per_class_figure(rep.per_class, rep.best, rep.baseline),
        "confusion": best_confusion_figure(rep.best),
    }


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; } .warn { color: #b00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""

HOW_TO_READ = (
    "Each row is one weighting scheme (or loss). <b>best</b> and <b>median</b> are CV scores "
    "over its complete trials. <b>its folds</b> are the per-fold scores of its best trial, "
    "<b>baseline folds</b> those of the best <code>none</code> + <code>crossentropy</code> "
    "trial, on the same folds. <b>Δ mean</b> is the mean per-fold gain over the baseline and "
    "<b>wins</b> the folds where it is ahead. Two paired tests say whether the gain is beyond "
    "fold-to-fold noise: the Wilcoxon signed-rank test (the smallest p it can reach with this "
    "many folds in brackets) and the Nadeau–Bengio corrected t-test (<b>NB p</b>), which "
    "accounts for the overlap of CV training sets. The verdict is <i>better</i> or "
    "<i>worse</i> when NB p &lt; 0.05, else <i>within noise</i>. The best "
    "of many trials is optimistically biased, so treat a small gain with few folds as "
    "unproven, and confirm the winner on the held-out test split."
)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def leaderboard_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["#", "trial", "scheme", "loss", "arch", "CV ± std", "threshold → tuned"]
    out = []
    for i, r in enumerate(rows, 1):
        thr = "" if r.get("threshold") is None else f"{r['threshold']:.2f} → {r['tuned']:.4f}"
        out.append(
            [
                str(i),
                str(r["trial"]),
                r["scheme"],
                r["loss"],
                r["arch"],
                f"{r['value']:.4f} ± {r['std']:.4f}",
                thr,
            ]
        )
    return headers, out


def render_html(rep: StudyReport, images: dict[str, bytes]) -> str:
    """One self-contained page: tables, and the PNGs embedded as base64 data URIs."""
    import base64
    import html

    esc = html.escape
    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(rep.states.items())) or "no trials"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>weightsearch report: {esc(rep.study_name)}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>Study {esc(rep.study_name)}</h1>",
        f"<p>{esc(rep.description)}</p>" if rep.description else "",
        f"<p class='note'>engine {esc(rep.engine)} · metric CV {esc(rep.metric)} · "
        f"{rep.folds or '?'} folds · {esc(states)}</p>",
        "<h2>Leaderboard</h2>",
        _html_table(*leaderboard_cells(rep.leaderboard)),
        "<h2>Weighting schemes and losses against the unweighted baseline</h2>",
        f"<p class='{'warn' if rep.baseline is None else 'note'}'>{esc(rep.baseline_note)}</p>",
        f"<p class='note'>{HOW_TO_READ}</p>",
        "<h3>By weighting scheme</h3>",
        _html_table(*format_comparison(rep.schemes)),
        "<h3>By loss</h3>",
        _html_table(*format_comparison(rep.losses)),
        "<h2>Per-class F1: where the winner helps and where it costs</h2>",
        "<p class='note'>Out-of-fold F1 per class at threshold 0.5 (argmax for multi-class), "
        "rarest class first. "
        "Weighting usually raises the rare classes and may lower the frequent ones.</p>",
        _html_table(*format_per_class(rep.per_class)) if rep.per_class else "<p>–</p>",
    ]
    captions = {
        "per_class": "Per-class F1, best trial against the baseline",
        "confusion": "Confusion matrix of the best trial",
        "by_component": "CV score by weighting scheme and by loss",
        "history": "Optimisation history",
        "importances": "Hyperparameter importances",
    }
    for key in ("per_class", "confusion", "by_component", "history", "importances"):
        if key in images:
            data = base64.b64encode(images[key]).decode("ascii")
            parts.append(
                f"<h3>{captions[key]}</h3><img alt='{captions[key]}' "
                f"src='data:image/png;base64,{data}'>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


# ---- writing ---------------------------------------------------------------------------------


def write_files(study: Any, rep: StudyReport, directory: Path) -> list[Path]:
    """Write the PNGs and ``report.html`` into ``directory`` (which must exist)."""
    import io

    plt = _pyplot()
    images: dict[str, bytes] = {}
    paths = []
    for key, fig in make_figures(study, rep).items():
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=90)
        finally:
            plt.close(fig)
        images[key] = buf.getvalue()
        path = directory / FIGURES[key]
        path.write_bytes(images[key])
        paths.append(path)
    html_path = directory / HTML_NAME
    html_path.write_text(render_html(rep, images), encoding="utf-8")
    return [*paths, html_path]


def open_study(name: str, storage: str) -> Any:
    """Load a stored study; :class:`ReportError` names the studies there if it is missing."""
    from weightsearch.storage import load_stored_study

    return load_stored_study(name, storage, ReportError)


def build_report(
    study_name: str,
    storage: str,
    out_dir: str | Path | None = None,
    *,
    tracking_uri: str | None = None,
    track: bool = True,
    top: int = 10,
) -> StudyReport:
    """Analyse a stored study, write its report into ``out_dir`` and log it to MLflow.

    ``out_dir`` defaults to ``reports/<study>``. The files are written into a temporary
    directory next to it and moved into place only when complete (so an error leaves no
    partial report). The tracking URI defaults to the one in the study's stored spec; the
    files go under ``report/`` on the study's latest MLflow parent run.
    """
    import shutil
    import tempfile

    from weightsearch import tracking

    study = open_study(study_name, storage)
    rep = analyse(study, top=top)
    out = Path(out_dir) if out_dir is not None else Path("reports") / study_name
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out: {out} exists and is not a directory.")
    spec = study.user_attrs.get("spec", {}) or {}
    tspec = spec.get("tracking", {}) or {}
    uri = tracking_uri or (tspec.get("mlflow_uri") if tspec.get("enabled", True) else None)
    experiment = tspec.get("experiment") or spec.get("name") or study_name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = write_files(study, rep, tmp)
        if not track:
            rep.mlflow_note = "MLflow logging switched off (--no-tracking)."
        elif not uri:
            rep.mlflow_note = "tracking was off for this study; give --tracking-uri to log."
        else:
            rep.mlflow_run_id, rep.mlflow_note = tracking.log_report_artifacts(
                uri, experiment, study_name, tmp, artifact_path="report"
            )
        out.mkdir(exist_ok=True)
        rep.files = []
        for f in files:
            target = out / f.name
            f.replace(target)
            rep.files.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rep.out_dir = out
    return rep


_NUMERIC = re.compile(r"[-+–0-9.e/ ±→()]*")


def terminal_renderables(rep: StudyReport) -> list[Any]:
    """What ``weightsearch report`` prints: rich tables and lines, in order."""
    from rich.table import Table

    def table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            left = i == 0 or h in ("verdict", "scheme", "loss", "arch", "class")
            cells = [row[i] for row in rows]
            # numbers never get cut to "0.9…" on a narrow terminal: they keep their width
            # and the text columns (names, verdicts, fold lists) wrap instead
            numeric = bool(cells) and all(_NUMERIC.fullmatch(c) for c in cells)
            t.add_column(
                h,
                justify="left" if left else "right",
                no_wrap=numeric,
                min_width=max(len(c) for c in cells) if numeric else None,
                overflow="ellipsis" if numeric else "fold",
            )
        for row in rows:
            t.add_row(*row)
        return t

    states = ", ".join(f"{v} {k.lower()}" for k, v in sorted(rep.states.items())) or "no trials"
    out: list[Any] = [
        f"[bold]{rep.study_name}[/bold]: engine {rep.engine}, metric CV {rep.metric}, "
        f"{rep.folds or '?'} folds, {states}"
    ]
    if rep.leaderboard:
        out.append(table("Leaderboard", *leaderboard_cells(rep.leaderboard)))
    base_style = "bold yellow" if rep.baseline is None else "bold"
    out.append(f"[{base_style}]{rep.baseline_note}[/{base_style}]")
    for title, rows in (("By weighting scheme", rep.schemes), ("By loss", rep.losses)):
        out.append(table(f"{title} (best trial vs baseline)", *format_comparison(rows, True)))
    floor = ""
    if rep.baseline is not None and fold_values(rep.baseline):
        k = len(fold_values(rep.baseline))
        floor = (
            f" With {k} folds Wilcoxon cannot go below p = {wilcoxon_min_p(k):.3g}"
            + (" (so it can never reach 0.05)" if wilcoxon_min_p(k) > ALPHA else "")
            + "; a row with zero fold differences shows its own floor in brackets."
        )
    out.append(
        "[dim]Δ mean: mean per-fold gain over the baseline; wins: folds ahead; Wilcoxon p: "
        f"signed-rank test on the fold differences.{floor} NB p: Nadeau–Bengio corrected t-test; "
        f"verdict: better or worse when NB p < {ALPHA}, else within noise.[/dim]"
    )
    if rep.per_class:
        title = f"Per-class F1: best trial {rep.best.number} vs " + (
            f"baseline trial {rep.baseline.number}" if rep.baseline is not None else "no baseline"
        )
        out.append(table(title, *format_per_class(rep.per_class)))
    if rep.out_dir is not None:
        out.append(f"Report: {rep.out_dir / HTML_NAME} ({len(rep.files)} files in {rep.out_dir})")
    if rep.mlflow_note:
        out.append(f"MLflow: {rep.mlflow_note}")
    return out
