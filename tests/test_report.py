"""The `report` command: statistics on hand-made trials, files, HTML, MLflow, and a real study."""

from __future__ import annotations

import io
import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from scipy import stats

import weightsearch.report.build as report_build
from weightsearch import report as R
from weightsearch.cli import main

PNG = b"\x89PNG\r\n\x1a\n"

# ---------------------------------------------------------------------------- hand-made trials

SCHEMES = ("none", "balanced", "sqrt")
LOSSES = ("crossentropy", "focal")
DISTS = {
    "weighting.scheme": CategoricalDistribution(SCHEMES),
    "loss.name": CategoricalDistribution(LOSSES),
    "train.learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
}


def make_trial(
    scheme: str,
    loss: str,
    folds: list[float] | None,
    *,
    state: str = "COMPLETE",
    lr: float = 1e-3,
    per_class: dict[str, float] | None = None,
    confusion: list | None = None,
) -> optuna.trial.FrozenTrial:
    attrs: dict = {
        "config": {
            "weighting": {"scheme": scheme, "params": {}},
            "loss": {"name": loss, "params": {}},
            "model": {"arch": "mlp", "params": {}},
            "train": {"learning_rate": lr, "optimizer": "adam"},
        }
    }
    if folds is not None:
        attrs["fold_values"] = folds
        attrs["cv_std"] = float(np.std(folds, ddof=1))
    if per_class is not None:
        attrs["per_class_f1"] = per_class
    if confusion is not None:
        attrs["oof_confusion"] = confusion
    return optuna.trial.create_trial(
        state=getattr(optuna.trial.TrialState, state),
        value=float(np.mean(folds)) if state == "COMPLETE" else None,
        params={"weighting.scheme": scheme, "loss.name": loss, "train.learning_rate": lr},
        distributions=DISTS,
        user_attrs=attrs,
    )


BASE = [0.60, 0.62, 0.58, 0.61, 0.59]
BAL = [0.66, 0.69, 0.63, 0.67, 0.66]  # ahead on every fold
SQRT = [0.61, 0.60, 0.60, 0.62, 0.58]  # mixed


def fake_trials() -> list[optuna.trial.FrozenTrial]:
    trials = [
        make_trial("none", "crossentropy", BASE, lr=1e-3),
        make_trial("none", "crossentropy", [0.5, 0.52, 0.49, 0.5, 0.51], lr=1e-2),
        make_trial("balanced", "crossentropy", BAL, lr=2e-3),
        make_trial("balanced", "focal", [0.62, 0.6, 0.61, 0.6, 0.62], lr=3e-3),
        make_trial("sqrt", "focal", SQRT, lr=4e-3),
        make_trial("sqrt", "focal", None, state="PRUNED"),
        make_trial("balanced", "focal", None, state="FAIL"),
    ]
    for i, t in enumerate(trials):
        t.number = i
    return trials


# ---------------------------------------------------------------------------- statistics


def test_wilcoxon_min_p_is_two_over_two_to_the_n() -> None:
    assert R.wilcoxon_min_p(3) == 0.25
    assert R.wilcoxon_min_p(5) == 0.0625
    assert R.wilcoxon_min_p(6) == 0.03125
    assert R.wilcoxon_min_p(1) == 1.0 and R.wilcoxon_min_p(0) == 1.0
    # and scipy's exact test reaches it when every difference has the same sign
    assert R.wilcoxon_p([0.01, 0.02, 0.03]) == pytest.approx(0.25)


def test_nadeau_bengio_matches_the_hand_computation() -> None:
    d = [0.02, 0.05, 0.01, 0.04, 0.03]  # mean 0.03, sample variance 0.00025, k = 5
    t, p = R.nadeau_bengio(d, test_train_ratio=1 / 4)
    expected_t = 0.03 / math.sqrt((1 / 5 + 1 / 4) * 0.00025)
    assert t == pytest.approx(expected_t) and t == pytest.approx(2.8284271, rel=1e-6)
    assert p == pytest.approx(2 * stats.t.sf(expected_t, df=4))
    # the correction makes it more conservative than the plain paired t-test
    assert p > stats.ttest_rel(np.array(d) + 1, np.ones(5)).pvalue
    assert math.isnan(R.nadeau_bengio([0.1], 1.0)[1])
    assert R.nadeau_bengio([0.0, 0.0, 0.0], 0.5)[1] == 1.0
    # every fold differs by the same non-zero amount: no variance, no test
    assert all(math.isnan(v) for v in R.nadeau_bengio([0.02, 0.02, 0.02], 0.5))


def test_statistics_against_hand_computed_constants() -> None:
    # d = 1, 2, 3 (k = 3): mean 2, sample variance 1; with n_test/n_train = 1/2,
    # t = 2 / sqrt((1/3 + 1/2) · 1) = 2 / sqrt(5/6). With 2 degrees of freedom Student's t
    # has a closed form, P(|T| > t) = 1 - t / sqrt(t² + 2), so no scipy is needed to check p.
    t, p = R.nadeau_bengio([1.0, 2.0, 3.0], test_train_ratio=0.5)
    assert t == pytest.approx(2.1908902, rel=1e-7)
    assert p == pytest.approx(1 - 2.1908902 / math.sqrt(2.1908902**2 + 2), rel=1e-6)
    assert p == pytest.approx(0.1598319, rel=1e-6)

    # BAL - BASE = 0.06 0.07 0.05 0.06 0.07: mean 0.062, sample variance 7e-5, k = 5, ratio 1/4
    test = R.paired_test(BAL, BASE)
    assert test.mean_diff == pytest.approx(0.062)
    assert test.nb_t == pytest.approx(0.062 / math.sqrt((1 / 5 + 1 / 4) * 7e-5))
    assert test.nb_t == pytest.approx(11.046798, rel=1e-6)
    assert test.nb_p == pytest.approx(2 * stats.t.sf(11.046798, df=4), rel=1e-5)

    # the Wilcoxon floor: over all 2**4 sign patterns of four distinct differences, scipy's
    # exact test never goes below 2 / 2**4 = 0.125, and reaches it only when all share a sign
    ps = {
        signs: stats.wilcoxon(np.multiply(signs, [0.01, 0.02, 0.03, 0.04])).pvalue
        for signs in itertools.product((1, -1), repeat=4)
    }
    assert min(ps.values()) == pytest.approx(0.125) == R.wilcoxon_min_p(4)
    assert {s for s, v in ps.items() if v == pytest.approx(0.125)} == {(1,) * 4, (-1,) * 4}
    # zero differences are dropped before the test: three non-zero ones, floor 2 / 2**3
    assert R.wilcoxon_p([0.0, 0.01, 0.02, 0.03]) == pytest.approx(0.25)
    assert R.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    two = R.paired_test([0.7, 0.8, 0.8], [0.7, 0.7, 0.7])  # one fold tied
    assert two.wilcoxon_min_p == 0.5 and two.wilcoxon_p == pytest.approx(0.5)
    assert "2 non-zero fold difference(s)" in two.note


def test_paired_test_says_when_wilcoxon_cannot_reach_significance() -> None:
    test = R.paired_test([0.7, 0.8, 0.75], [0.6, 0.7, 0.7])
    assert test.k == 3 and test.wins == 3 and test.losses == 0
    assert test.mean_diff == pytest.approx((0.1 + 0.1 + 0.05) / 3)
    assert test.wilcoxon_p == pytest.approx(0.25) and test.wilcoxon_min_p == 0.25
    assert "cannot go below p = 0.25" in test.note
    with pytest.raises(ValueError, match="same number of folds"):
        R.paired_test([0.1, 0.2], [0.1])


def test_paired_test_verdicts() -> None:
    ahead = R.paired_test(BAL, BASE)
    assert ahead.verdict == "better" and ahead.nb_p < 0.05
    assert ahead.wilcoxon_p == pytest.approx(0.0625)  # 5 folds, all ahead: the minimum
    behind = R.paired_test(BASE, BAL)
    assert behind.verdict == "worse"
    assert R.paired_test(SQRT, BASE).verdict == "within noise"


# ---------------------------------------------------------------------------- comparison table


def test_baseline_is_the_best_none_crossentropy_trial() -> None:
    trials = fake_trials()
    assert R.find_baseline(trials).number == 0
    assert R.best_trial(trials).number == 2
    assert R.find_baseline([t for t in trials if R.component(t, "scheme") != "none"]) is None


def test_comparison_rows_match_the_trials() -> None:
    trials = fake_trials()
    rows = {r.name: r for r in R.comparison_rows(trials, "scheme")}
    assert list(rows) == ["balanced", "sqrt", "none"]  # best first
    bal = rows["balanced"]
    assert (bal.n_complete, bal.n_pruned, bal.n_failed) == (2, 0, 1)
    assert bal.best == pytest.approx(0.662) and bal.best_trial == 2  # mean of BAL
    assert bal.median == pytest.approx((0.662 + 0.61) / 2)  # its two complete trials
    assert bal.partner == "crossentropy"
    assert bal.best_folds == BAL and bal.baseline_folds == BASE and bal.baseline_trial == 0
    # the paired test is of BAL against BASE (hand-computed in the test above)
    assert (bal.test.k, bal.test.wins, bal.test.losses) == (5, 5, 0)
    assert bal.test.mean_diff == pytest.approx(0.062) and bal.test.verdict == "better"
    assert bal.test.nb_t == pytest.approx(11.046798, rel=1e-6)
    assert rows["sqrt"].n_pruned == 1 and rows["sqrt"].n_complete == 1
    none = rows["none"]
    assert none.n_complete == 2 and none.test is None
    assert none.note == "its best trial is the baseline"

    losses = {r.name: r for r in R.comparison_rows(trials, "loss")}
    assert losses["crossentropy"].best_trial == 2 and losses["crossentropy"].n_complete == 3
    assert losses["focal"].best == pytest.approx(0.61) and losses["focal"].best_trial == 3
    assert losses["focal"].n_pruned == 1 and losses["focal"].n_failed == 1

    headers, cells = R.format_comparison(R.comparison_rows(trials, "scheme"))
    assert headers[0] == "scheme" and "NB p" in headers
    first = dict(zip(headers, cells[0], strict=True))
    assert first["trials"] == "2 (1 failed)" and first["best"] == "0.6620"
    assert first["median"] == "0.6360" and first["best trial"] == "2 (crossentropy)"
    assert first["its folds"] == "0.660 0.690 0.630 0.670 0.660"
    assert first["baseline folds"] == "0.600 0.620 0.580 0.610 0.590"
    assert first["Δ mean"] == "+0.0620" and first["NB p"] == "3.8e-04"
    assert first["wins"] == "5/5" and first["verdict"] == "better"
    assert first["Wilcoxon p (min)"] == "0.0625 (0.0625)"
    assert dict(zip(headers, cells[2], strict=True))["baseline folds"] == "(is the baseline)"
    # the terminal's compact form: baseline folds and the usual Wilcoxon floor are said once
    headers, cells = R.format_comparison(R.comparison_rows(trials, "scheme"), compact=True)
    assert "baseline folds" not in headers and "Wilcoxon p" in headers
    assert dict(zip(headers, cells[0], strict=True))["Wilcoxon p"] == "0.0625"
    assert (
        dict(zip(headers, cells[2], strict=True))["best trial"] == "0 (crossentropy), the baseline"
    )


def test_missing_baseline_is_said_plainly() -> None:
    trials = [t for t in fake_trials() if R.component(t, "scheme") != "none"]
    rows = R.comparison_rows(trials, "scheme")
    assert all(r.test is None and r.baseline_folds is None for r in rows)
    headers, cells = R.format_comparison(rows)
    col = headers.index("baseline folds")
    assert {c[col] for c in cells} == {"never tried"}

    study = optuna.create_study(direction="maximize", study_name="nobase")
    for t in trials:
        study.add_trial(t)
    rep = R.analyse(study)
    assert rep.baseline is None
    assert rep.baseline_note.startswith("baseline (none + crossentropy) was never tried")
    html = R.render_html(rep, {})
    assert "baseline (none + crossentropy) was never tried" in html


def test_per_class_rows_rarest_first_with_deltas() -> None:
    best = make_trial(
        "balanced",
        "crossentropy",
        BAL,
        per_class={"big": 0.90, "small": 0.60, "mid": 0.70},
        confusion=[[80, 5, 5], [3, 7, 0], [4, 1, 15]],
    )
    base = make_trial(
        "none", "crossentropy", BASE, per_class={"big": 0.95, "small": 0.2, "mid": 0.6}
    )
    rows = R.per_class_rows(best, base)
    assert [r.name for r in rows] == ["small", "mid", "big"]
    assert [r.support for r in rows] == [10, 20, 90]
    assert [round(r.delta, 4) for r in rows] == [0.4, 0.1, -0.05]
    headers, cells = R.format_per_class(rows)
    assert cells[0] == ["small", "10", "0.6000", "0.2000", "+0.4000"]
    # multilabel: (L, 2, 2) counts, support = positives = FN + TP
    ml = make_trial(
        "none",
        "focal",
        BASE,
        per_class={"a": 0.5, "b": 0.7},
        confusion=[[[50, 2], [3, 5]], [[30, 10], [5, 15]]],
    )
    assert R.class_support(ml) == [8, 20]
    assert R.per_class_rows(ml, None)[0].baseline is None


# ---------------------------------------------------------------------------- figures and files


def _png_ok(data: bytes) -> None:
    import io

    import matplotlib.image

    assert data.startswith(PNG)
    img = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def test_degenerate_studies_get_placeholder_figures() -> None:
    import matplotlib.pyplot as plt

    empty = optuna.create_study(direction="maximize")
    one = optuna.create_study(direction="maximize")
    one.add_trial(make_trial("none", "crossentropy", BASE))
    for study, n in ((empty, 0), (one, 1)):
        fig = R.importance_figure(study)
        assert fig.axes[0].get_title() == "Hyperparameter importances"
        assert fig.axes[0].texts[0].get_text() == f"needs at least 2 complete trials, got {n}"
        plt.close(fig)
    fig = R.history_figure(empty)
    assert "no complete trial" in fig.axes[0].texts[0].get_text()
    plt.close("all")
    fig = R.best_confusion_figure(one.best_trial)  # stored no oof_confusion
    assert "older weightsearch" in fig.axes[0].texts[0].get_text()
    plt.close("all")


def _fake_storage(tmp_path: Path, name: str = "fake") -> str:
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("metric", "macro_f1")
    study.set_user_attr(
        "spec",
        {
            "name": name,
            "cv": {"folds": 5, "metric": "macro_f1"},
            "search": {"engine": "optuna", "sampler": "tpe", "pruner": "median"},
            "tracking": {
                "enabled": True,
                "mlflow_uri": f"sqlite:///{tmp_path}/mlflow.db",
                "experiment": None,
            },
        },
    )
    for t in fake_trials():
        t.user_attrs["per_class_f1"] = {"maj": 0.9, "min": 0.3 + 0.01 * len(t.user_attrs)}
        t.user_attrs["oof_confusion"] = [[90, 10], [6, 4]]
        study.add_trial(t)
    return url


def test_report_cli_writes_files_and_logs_them_to_the_parent_run(tmp_path: Path, capsys) -> None:
    from mlflow import MlflowClient

    from weightsearch.tracking import make_tracker

    url = _fake_storage(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = make_tracker(True, uri, "fake")
    tracker.start_study("fake", {"n_trials": 7}, {"optuna.study": "fake"})
    parent = tracker.parent_run_id
    tracker.end_study()

    out = tmp_path / "rep"
    assert main(["report", "--study", "fake", "--storage", url, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "By weighting scheme" in text and "By loss" in text and "Leaderboard" in text
    assert "baseline: trial 0 (none + crossentropy)" in text
    assert parent in text

    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*R.FIGURES.values(), R.HTML_NAME])
    for f in R.FIGURES.values():
        _png_ok((out / f).read_bytes())
    html = (out / R.HTML_NAME).read_text()
    assert html.count("src='data:image/png;base64,") == len(R.FIGURES)
    assert "<h3>By weighting scheme</h3>" in html and "<td>better</td>" in html
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.tmp-")]

    client = MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert logged == {f"report/{n}" for n in names}


def test_report_errors_are_one_line_and_leave_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    missing = tmp_path / "nope.db"
    assert main(["report", "--study", "x", "--storage", f"sqlite:///{missing}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --storage: no Optuna database at {missing} (from 'sqlite:///{missing}'); "
        "run the study first or pass the storage it used."
    ]
    assert not missing.exists()

    url = _fake_storage(tmp_path)
    assert main(["report", "--study", "other", "--storage", url, "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --study: no study named 'other'") and "studies there: fake" in err
    assert len(err.strip().splitlines()) == 1

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_build, "render_html", boom)
    out = tmp_path / "rep"
    rc = main(["report", "--study", "fake", "--storage", url, "--out", str(out), "--no-tracking"])
    assert rc == 1 and "disk full" in capsys.readouterr().err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")] == []


# ---------------------------------------------------------------------------- a real tiny study


@pytest.mark.slow
def test_report_on_a_real_tiny_study(tiny_spec, tmp_path: Path, capsys) -> None:
    """Train a 2-trial study (the baseline enqueued first), then report on it."""
    from mlflow import MlflowClient

    spec = tiny_spec(name="real", n_trials=2)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    pre = optuna.create_study(study_name="real", storage=storage, direction="maximize")
    pre.enqueue_trial({"weighting.scheme": "none", "loss.name": "crossentropy"})
    pre.enqueue_trial({"weighting.scheme": "balanced", "loss.name": "crossentropy"})
    assert main(["study", str(spec)]) == 0
    capsys.readouterr()

    out = tmp_path / "report"
    assert main(["report", "--study", "real", "--storage", storage, "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    study = optuna.load_study(study_name="real", storage=storage)
    trials = study.trials
    assert [R.component(t, "scheme") for t in trials] == ["none", "balanced"]
    rep = R.analyse(study)
    assert rep.baseline.number == 0
    row = {r.name: r for r in rep.schemes}["balanced"]
    # the comparison table's numbers are those of the trials in storage
    assert row.best == trials[1].value and row.best_folds == trials[1].user_attrs["fold_values"]
    assert row.baseline_folds == trials[0].user_attrs["fold_values"]
    assert row.test.mean_diff == pytest.approx(
        np.mean(
            np.subtract(trials[1].user_attrs["fold_values"], trials[0].user_attrs["fold_values"])
        )
    )
    assert row.test.k == 2 and row.test.wilcoxon_min_p >= 0.5  # 2 folds can never be significant
    assert f"{row.best:.4f}" in printed and "balanced" in printed
    # per-class support comes from the stored out-of-fold confusion
    n_rows = int(np.sum(rep.best.user_attrs["oof_confusion"]))
    assert sum(r.support for r in rep.per_class) == n_rows == 128  # the search part of 160

    for f in R.FIGURES.values():
        _png_ok((out / f).read_bytes())
    html = (out / R.HTML_NAME).read_text()
    assert f"{row.best:.4f}" in html and "data:image/png;base64," in html

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("real")
    parents = [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("weightsearch.role") == "study"
    ]
    assert len(parents) == 1
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert f"report/{R.HTML_NAME}" in logged and "report/per_class_f1.png" in logged


def test_a_300_class_report_is_bounded_in_size_and_time() -> None:
    """Per-class figure of numbered ticks and at most 14 inches; tables of the 40 rarest
    classes and a "… N more" row; every figure, the HTML and the terminal in seconds."""
    import time

    c = 300
    rng = np.random.default_rng(0)
    classes = [f"class_{i}" for i in range(c)]
    cm = rng.integers(0, 20, size=(c, c)).tolist()
    study = optuna.create_study(direction="maximize")
    for scheme, folds in (("none", BASE), ("balanced", BAL)):
        pc = {k: float(v) for k, v in zip(classes, rng.random(c), strict=True)}
        study.add_trial(make_trial(scheme, "crossentropy", folds, per_class=pc, confusion=cm))
    start = time.perf_counter()
    rep = R.analyse(study)
    images = R.figure_pngs(study, rep)
    html = R.render_html(rep, images)
    items = R.terminal_renderables(rep)
    assert time.perf_counter() - start < 10
    fig = R.per_class_figure(rep.per_class, rep.best, rep.baseline)
    assert fig.get_size_inches()[0] <= 14 and len(fig.axes[0].get_xticklabels()) <= 12
    headers, rows = R.format_per_class(rep.per_class)
    assert len(rows) == 41 and rows[-1][0] == "… 260 more classes"
    assert html.count("<tr>") < 120 and "… 260 more classes" in html
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    for item in items:
        console.print(item)
    text = console.export_text()
    assert "… 260 more classes" in text and "class_" in text and text.count("\n") < 150
    _png_ok(images["per_class"])
