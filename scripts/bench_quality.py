"""Benchmarks B7 (the search's held-out macro-F1 against four baselines, on real tables and the
shipped images) and B9 (the gain of each lever of issue 15), written into BENCHMARKS.md.

    .venv/bin/python scripts/bench_quality.py --quick            # smoke run, prints the tables
    .venv/bin/python scripts/bench_quality.py --write            # the full run, into the file

B7, per dataset and seed (the seed is the spec's ``seed``: it draws the train/test split, the
folds, the sampler and the models' initialisation, so each seed reruns the whole pipeline):

1. the search's best, as a user runs it: ``weightsearch.search(data, n_trials=…, folds=…,
   epochs=…, seed=…)`` with the default space, then its best config trained on the whole
   training part and scored on the held-out test part by the product's path
   (``train_from_config(result.best_config, dataset=…)``, which is ``result.train()`` without
   MLflow);
2. the unweighted Keras model and 3. the same with fixed ``balanced`` class weights: each a
   one-trial search on the same data and seed whose space is fixed (scheme, crossentropy,
   the default arch with its default parameters), trained and scored the same way, so they
   get the product's early stopping, final epochs and decision threshold;
4. ``LogisticRegression(class_weight="balanced")`` after imputation, scaling and one-hot
   encoding (sklearn ``ColumnTransformer``), and 5. ``HistGradientBoostingClassifier(
   class_weight="balanced")`` with native categorical columns, both fitted on the same
   training part (flattened pixels for images) and scored on the same test part.

B9 reuses B7's searches: (a) numeric encodings, the same search with
``space.model.numeric`` searched against fixed ``standardize`` (one extra search per tabular
dataset and seed); (b) the best trial's fold ensemble (saved to its MLflow run, so the B7
searches track to a temporary MLflow store) against its refit (B7's number); (c) multiclass
decision weights: the cross-fitted CV gain (``cv_value_tuned`` − value) against the held-out
gain of ``argmax(proba · decision_weights)`` over ``argmax(proba)``. A lever this tree does
not have is reported as skipped.

With ``--write`` the B7 and B9 summary rows and sections of BENCHMARKS.md are replaced (or
added) and every other section stays (``bench.merge_report``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: table, fmt, log, machine, merge_report, …)
from bench import ROOT, fmt, log, table, verdict  # noqa: E402

NUMERIC = ["standardize", "quantile", "piecewise_linear"]
TITLES = {
    "B7": ("Held-out macro-F1 on real tables and the shipped images",
           "above both MLP baselines on every dataset; at least half of the gap to boosted "
           "trees closed where they lead"),
    "B9": ("The gain of each lever", "none (gains reported)"),
}


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------
def breast_cancer_frame() -> Any:
    """sklearn breast cancer as a table (so ``space.model.numeric`` applies to it)."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame  # 569 rows, 30 numeric, target 212/357


def wine_frame() -> Any:
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame  # 178 rows, 13 numeric, target 59/71/48


def diabetes_frame() -> Any:
    """sklearn diabetes with the target binarised: 1 = disease progression above its 80th
    percentile (89 of 442 rows), so the positive class is the rare one."""
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame
    df["target"] = (df["target"] > df["target"].quantile(0.8)).astype(int)
    return df


@dataclass(frozen=True)
class Case:
    key: str  # --datasets name
    label: str
    data: Callable[[], Any]  # what search() takes: "builtin:…" or a DataFrame
    target: str | None = None
    arch: str = "mlp"  # the default arch of its kind, fixed for the MLP baselines

    @property
    def tabular(self) -> bool:
        return self.arch == "mlp"


CASES = [
    Case("breast-cancer", "breast-cancer (569 × 30, binary 212/357)", breast_cancer_frame,
         "target"),
    Case("wine", "wine (178 × 13, 3 classes 59/71/48)", wine_frame, "target"),
    Case("penguins", "penguins (344 × 7, 3 classes, strings and holes)",
         lambda: "builtin:penguins"),
    Case("diabetes", "diabetes > 80th pct (442 × 10, binary 353/89)", diabetes_frame,
         "target"),
    Case("digits-lt", "digits-lt (593 8×8 images, 10 classes, ratio 19; CNN)",
         lambda: "builtin:digits-lt", arch="cnn"),
]
QUICK_CASES = ("penguins", "digits-lt")


@dataclass(frozen=True)
class Budget:
    trials: int
    folds: int
    epochs: int
    patience: int
    startup: int

    def describe(self) -> str:
        return (f"{self.trials} trials (TPE, {self.startup} startup trials, median pruner) × "
                f"{self.folds} folds × ≤{self.epochs} epochs, patience {self.patience}")


def budget(quick: bool, trials: int | None, **override: int | None) -> Budget:
    """The spec's defaults (20 trials × 5 folds × ≤30 epochs, patience 5, 5 startup trials),
    or the smoke run's 4 × 3 × ≤6, patience 2; ``override`` (folds, epochs, patience,
    startup) replaces any of them, and the tables state the budget used."""
    b = Budget(4, 3, 6, 2, 2) if quick else Budget(20, 5, 30, 5, 5)
    if trials is not None:
        b = Budget(trials, b.folds, b.epochs, b.patience, min(b.startup, max(1, trials - 1)))
    given = {k: v for k, v in override.items() if v is not None}
    return replace(b, **given) if given else b


# ---------------------------------------------------------------------------------------
# pure helpers (tested in tests/test_bench.py)
# ---------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    vals = [float(v) for v in values]
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def pm(values: Sequence[float | None], digits: int = 3) -> str:
    """``"0.912 ± 0.013"`` over the values that exist (``"—"`` when none does)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    m, s = mean_std(vals)
    return f"{m:.{digits}f} ± {s:.{digits}f}" + (f" (n={len(vals)})"
                                                   if len(vals) < len(values) else "")


def gap_closed(search: float, mlp_best: float, hgb: float) -> float | None:
    """``(search − best MLP baseline) / (HGB − best MLP baseline)`` where HGB leads the
    MLP baselines, else ``None`` (no gap to close)."""
    if hgb <= mlp_best:
        return None
    return (search - mlp_best) / (hgb - mlp_best)


def b7_verdict(means: dict[str, float]) -> dict[str, Any]:
    """Both B7 targets on one dataset's mean test scores (keys: search, none, balanced, hgb)."""
    mlp_best = max(means["none"], means["balanced"])
    above = means["search"] > mlp_best
    closed = gap_closed(means["search"], mlp_best, means["hgb"])
    return {"above": above, "tied": means["search"] == mlp_best, "closed": closed,
            "met": above and (closed is None or closed >= 0.5)}


def b7_summary(verdicts: Sequence[dict[str, Any]], n: int) -> str:
    """One line over the :func:`b7_verdict` of each of ``n`` datasets (failed ones absent)."""
    met = sum(v["met"] for v in verdicts)
    above = sum(v["above"] for v in verdicts)
    tied = sum(v["tied"] for v in verdicts)
    closed = [v["closed"] for v in verdicts if v["closed"] is not None]
    text = (f"targets met on {met} of {n} datasets: the search above both MLP baselines on "
            f"{above} of {n}" + (f" (tied with the better one on {tied})" if tied else ""))
    if not closed:
        return text + "; HGB leads the MLP baselines on none of them"
    return (text + f"; at least half of the gap to HGB closed on "
            f"{sum(c >= 0.5 for c in closed)} of the {len(closed)} where HGB leads")


def b7_why(missed: Sequence[tuple[str, float, float, int]]) -> str:
    """Why B7 is missed, from ``(dataset, search − better MLP baseline, std of the search
    over seeds, test rows)`` of each dataset that misses it."""
    if not missed:
        return ""
    parts = ", ".join(f"{k} {m:+.3f} (std {sd:.3f}; 1/{n} test rows = {1 / n:.3f})"
                      for k, m, sd, n in missed)
    return ("Why, and what would change it: where the search is not above both MLP "
            f"baselines, its mean margin to the better one is {parts}: each margin is within "
            "the search's spread over seeds, or near one test row's share, so three seeds of "
            "these small test splits cannot tell them apart, and a margin of +0.000 is the "
            "same test macro-F1 on every seed. More seeds, or larger tables, would.")


def numeric_text(numeric: dict[str, Any] | None) -> str | None:
    """A trial's numeric encoding as a cell: ``standardize``, ``quantile/8``; ``None`` for
    arrays (no such setting)."""
    if not numeric:
        return None
    bins = numeric.get("bins")
    return numeric["name"] + (f"/{bins}" if bins else "")


def won_row(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """What a trial's config chose, model parameters it leaves out filled from ``defaults``
    (the arch's own)."""
    def with_params(name: str, params: dict[str, Any]) -> str:
        inner = ", ".join(f"{k} {fmt(v, 3) if isinstance(v, float) else v}"
                          for k, v in sorted(params.items()))
        return f"{name} ({inner})" if inner else name

    model = {**defaults, **config["model"].get("params", {})}
    return {
        "scheme": with_params(config["weighting"]["scheme"], config["weighting"]["params"]),
        "loss": with_params(config["loss"]["name"], config["loss"]["params"]),
        "arch": config["model"]["arch"],
        "numeric": numeric_text(config["model"].get("numeric")),
        "width": model.get("width"),
        "depth": model.get("depth"),
        "dropout": model.get("dropout"),
        "head": model.get("head"),
        "learning_rate": config["train"].get("learning_rate"),
    }


# ---------------------------------------------------------------------------------------
# one dataset, one seed
# ---------------------------------------------------------------------------------------
TMP: Path = Path(tempfile.gettempdir())  # replaced by main() with a fresh directory


def run_search(case: Case, seed: int, b: Budget, *, name: str, space: dict[str, Any] | None,
               trials: int | None = None, track: bool = False) -> Any:
    import weightsearch

    uri = None
    if track:
        d = TMP / name
        d.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{d}/mlflow.db"
    return weightsearch.search(
        case.data(), target=case.target, space=space, n_trials=trials or b.trials,
        folds=b.folds, epochs=b.epochs, seed=seed, name=name, progress=False,
        tracking_uri=uri, cv={"patience": b.patience},
        search={"n_startup_trials": b.startup},
    )


def refit(result: Any, trial: Any = None) -> Any:
    """The product's final training of ``trial`` (default: the best) of a search: its
    exported config trained on the whole training part and scored on the test part."""
    from weightsearch.production import config_from_trial, train_from_config

    cfg = result.best_config if trial is None else config_from_trial(
        result.study, trial, result.storage)
    out = train_from_config(cfg, track=False, dataset=result.prepared.data)
    if out.test is None or out.test["rows"] != len(result.prepared.test_idx):
        raise RuntimeError("train_from_config did not score the search's test split")
    return out


def sklearn_scores(prepared: Any) -> dict[str, float]:
    """Balanced LogisticRegression and HistGradientBoosting on the search's own split."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    ds, train = prepared.data, prepared.train
    test = ds.subset(prepared.test_idx)

    def flat(x: Any) -> Any:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)

    xtr, xte = flat(train.x), flat(test.x)
    cats = list(ds.columns.categorical) if ds.columns is not None else []
    nums = [i for i in range(xtr.shape[1]) if i not in set(cats)]
    parts = [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums)]
    if cats:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore")), cats))
    models = {
        "lr": make_pipeline(ColumnTransformer(parts),
                            LogisticRegression(class_weight="balanced", max_iter=5000)),
        "hgb": HistGradientBoostingClassifier(
            class_weight="balanced", random_state=0,
            categorical_features=[i in set(cats) for i in range(xtr.shape[1])] if cats
            else None),
    }
    out = {}
    for key, model in models.items():
        model.fit(xtr, train.y)
        out[key] = float(f1_score(test.y, model.predict(xte), average="macro"))
    return out


def numeric_probe() -> bool:
    """Whether this tree's space takes ``space.model.numeric`` (a tiny in-memory spec)."""
    import numpy as np
    import pandas as pd

    from weightsearch import data as data_mod
    from weightsearch import engines
    from weightsearch import spec as spec_mod
    from weightsearch.storage import MEMORY

    rng = np.random.default_rng(0)
    ds = data_mod.from_frame(pd.DataFrame({"a": rng.normal(size=40), "label": np.arange(40) % 2}),
                             target="label", name="probe")
    raw = {"name": "probe", "data": {"source": "python:DataFrame"},
           "search": {"storage": MEMORY}, "tracking": {"enabled": False},
           "space": {"model": {"numeric": NUMERIC}}}
    try:
        engines.prepare(spec_mod.parse(raw), ds)
    except spec_mod.SpecError:
        return False
    return True


def default_numeric(result: Any) -> str | list[str] | None:
    """What the default space does with the MLP's numeric encoding: its choices when it
    searches them, its fixed value, or ``None`` (no such parameter)."""
    from weightsearch import models

    dim = result.prepared.space.params.get("model", {}).get("mlp", {}).get("numeric")
    if dim is not None:
        return list(dim.choices) if dim.kind == "categorical" else dim.value
    param = models.arch_params("mlp").get("numeric")
    return None if param is None else param.default


def fold_ensemble_score(result: Any, trial: Any, cfg: Any) -> float | None:
    """Test macro-F1 of ``trial``'s fold ensemble (its K fold models at their best epochs,
    averaged), fetched from its MLflow run as ``train.final = "fold_ensemble"`` does
    (:mod:`weightsearch.production.ensemble`); ``None`` when the trial saved none."""
    from weightsearch.production import ensemble
    from weightsearch.production.train import evaluate
    from weightsearch.tracking import flush_artifacts

    if not trial.user_attrs.get("fold_ensemble"):
        return None
    flush_artifacts()
    ens = ensemble.fetch(cfg, result.spec.tracking.mlflow_uri, required=True)
    data = result.prepared.data
    test = data.subset(result.prepared.test_idx)
    threshold, positive = cfg.decision_rule()
    scores = evaluate(None, test.x, test.y, task=test.task, classes=list(cfg.classes),
                      threshold=threshold, positive=positive,
                      proba=ens.predict(data.columns, test.x),
                      weights=cfg.decision_weights())
    return float(scores["macro_f1"])


def run_case(case: Case, seed: int, b: Budget, *, b7: bool, b9: bool,
             numeric_ok: bool) -> dict[str, Any]:
    """Everything B7 and B9 measure on one dataset and seed."""
    import numpy as np

    from weightsearch import metrics, models

    out: dict[str, Any] = {"seed": seed, "timings": {}}
    t0 = time.perf_counter()
    res = run_search(case, seed, b, name=f"q-{case.key}-{seed}", space=None, track=b9)
    best = res.best_trial
    fin = refit(res)
    out["timings"]["search"] = time.perf_counter() - t0
    test = res.prepared.data.subset(res.prepared.test_idx)
    out["rows"] = (len(res.prepared.train.y), len(test.y))
    out["task"] = test.task
    out["cv_best"] = float(best.value)
    out["search"] = float(fin.test["macro_f1"])
    out["won"] = won_row(best.user_attrs["config"],
                         {k: p.default for k, p in models.arch_params(
                             best.user_attrs["config"]["model"]["arch"]).items()})
    log(f"    seed {seed}: search best CV {best.value:.4f}, test {out['search']:.4f} "
        f"({len(res.study.trials)} trials, {out['timings']['search']:.0f} s)")
    if b7:
        for scheme in ("none", "balanced"):
            t1 = time.perf_counter()
            space = {"weighting": {"scheme": scheme}, "loss": {"name": "crossentropy"},
                     "model": {"arch": case.arch}}
            base = run_search(case, seed, b, name=f"q-{case.key}-{seed}-{scheme}",
                              space=space, trials=1)
            out[scheme] = float(refit(base).test["macro_f1"])
            out["timings"][scheme] = time.perf_counter() - t1
        t1 = time.perf_counter()
        out.update(sklearn_scores(res.prepared))
        out["timings"]["sklearn"] = time.perf_counter() - t1
        log(f"    seed {seed}: none {out['none']:.4f}, balanced {out['balanced']:.4f}, "
            f"LR {out['lr']:.4f}, HGB {out['hgb']:.4f}")
    if not b9:
        return out
    # (a) numeric encodings: B7's search is the run with or without them, the other is new
    if case.tabular and numeric_ok:
        t1 = time.perf_counter()
        default = default_numeric(res)
        searched = isinstance(default, list) and len(default) > 1
        if searched:
            with_r, without_space = res, {"model": {"numeric": "standardize"}}
            without_r = run_search(case, seed, b, name=f"q-{case.key}-{seed}-std",
                                   space=without_space)
        else:
            with_r = run_search(case, seed, b, name=f"q-{case.key}-{seed}-num",
                                space={"model": {"numeric": NUMERIC}})
            without_r = res if default in (None, "standardize") else run_search(
                case, seed, b, name=f"q-{case.key}-{seed}-std",
                space={"model": {"numeric": "standardize"}})
        with_fin = fin if with_r is res else refit(with_r)
        without_fin = fin if without_r is res else refit(without_r)
        chosen = with_r.best_trial.user_attrs["config"]["model"]
        out["numeric"] = {
            "with": float(with_fin.test["macro_f1"]),
            "without": float(without_fin.test["macro_f1"]),
            "cv_with": float(with_r.best_value), "cv_without": float(without_r.best_value),
            "chosen": numeric_text(chosen.get("numeric")),
        }
        out["timings"]["numeric"] = time.perf_counter() - t1
    # (b) the best trial's fold ensemble against its refit (B7's number)
    ens = fold_ensemble_score(res, best, fin.config)
    if ens is not None:
        out["ensemble"] = {"ensemble": ens, "refit": out["search"]}
    # (c) multiclass decision weights, tuned on out-of-fold predictions
    weights = best.user_attrs.get("decision_weights")
    tuned = best.user_attrs.get("cv_value_tuned")
    if test.task == "multiclass" and weights is not None and tuned is not None:
        proba = np.asarray(fin.test_proba)
        plain = metrics.score("macro_f1", test.y, np.argmax(proba, axis=1), task=test.task,
                              n_classes=test.n_classes)
        weighted = metrics.score("macro_f1", test.y,
                                 metrics.decide(proba, "multiclass", weights=weights),
                                 task=test.task, n_classes=test.n_classes)
        out["decision"] = {"cv": float(best.value), "cv_tuned": float(tuned),
                           "test": float(plain), "test_tuned": float(weighted)}
    return out


# ---------------------------------------------------------------------------------------
# the sections
# ---------------------------------------------------------------------------------------
def ok_runs(runs: dict[str, list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    return [r for r in runs[key] if "error" not in r]


def failures(runs: dict[str, list[dict[str, Any]]], cases: list[Case]) -> str:
    """One line per failed run, or ``""``."""
    lines = [f"- {c.key}, seed {r['seed']}: `{r['error']}`" for c in cases for r in runs[c.key]
             if "error" in r]
    return ("Failed runs (left out of the means above):\n\n" + "\n".join(lines)) if lines else ""


def render_b7(runs: dict[str, list[dict[str, Any]]], cases: list[Case], b: Budget,
              seeds: list[int], run_line: str) -> tuple[str, bool, str]:
    """(summary text, whether every dataset met both targets, section) of B7."""
    rows, seed_rows, won_rows = [], [], []
    verdicts, missed = [], []
    for case in cases:
        rs = ok_runs(runs, case.key)
        if not rs:
            rows.append([case.label, "—", *["failed"] * 5, None, None, "**failed**"])
            continue
        means = {k: mean_std([r[k] for r in rs])[0]
                 for k in ("search", "none", "balanced", "lr", "hgb")}
        v = b7_verdict(means)
        verdicts.append(v)
        if not v["above"]:
            missed.append((case.key, means["search"] - max(means["none"], means["balanced"]),
                           mean_std([r["search"] for r in rs])[1], rs[0]["rows"][1]))
        rows.append([case.label, f"{rs[0]['rows'][0]} / {rs[0]['rows'][1]}",
                     *(pm([r[k] for r in rs]) for k in ("search", "none", "balanced", "lr",
                                                         "hgb")),
                     v["above"], "trees do not lead" if v["closed"] is None
                     else f"{v['closed']:.2f}", "**met**" if v["met"] else "**missed**"])
        for r in rs:
            seed_rows.append([case.key, r["seed"], r["cv_best"], r["search"], r["none"],
                              r["balanced"], r["lr"], r["hgb"]])
            w = r["won"]
            won_rows.append([case.key, r["seed"], r["cv_best"], w["scheme"], w["loss"],
                             w["arch"] + (f" (head {w['head']})" if w["head"] else ""),
                             w["numeric"], w["width"], w["depth"], w["dropout"],
                             w["learning_rate"]])
    n = len(cases)
    met = sum(v["met"] for v in verdicts)
    summary = b7_summary(verdicts, n)
    setup = (
        f"{run_line}\n\n"
        f"Seeds {seeds}; the seed is the spec's `seed`, which draws the stratified 80/20 "
        "train/test split, the folds, the sampler and the models' initialisation, so each "
        "seed reruns the whole pipeline. Search: `weightsearch.search(data, n_trials, folds, "
        "epochs, seed, cv={\"patience\"}, search={\"n_startup_trials\"})` with the default "
        f"space, {b.describe()}; its best config is trained on the whole training part by "
        "`train_from_config(result.best_config, dataset=…)` (what `result.train()` runs: the "
        "median of the trial's per-fold best epochs, its tuned threshold for binary data) "
        "and scored on the held-out test part. Unweighted and `balanced` MLP (or CNN, for "
        "digits-lt): a one-trial search of the same budget and seed whose space fixes the "
        "scheme, crossentropy and the default arch with its default parameters, trained and "
        "scored the same way. LR: `LogisticRegression(class_weight=\"balanced\")` after "
        "median imputation + `StandardScaler` (one-hot encoding of the categorical columns, "
        "most-frequent imputation); HGB: `HistGradientBoostingClassifier(class_weight="
        "\"balanced\")` with the categorical columns native; both on the same split, "
        "flattened pixels for digits-lt, labels by `predict`. Test macro-F1, mean ± std over "
        "seeds. Gap closed = (search − best MLP baseline) / (HGB − best MLP baseline), where "
        "HGB leads the MLP baselines."
    )
    body = "\n\n".join(p for p in [
        setup,
        table(["dataset", "train / test rows", "search best", "unweighted MLP",
               "balanced MLP", "LR (balanced)", "HGB (balanced)", "above both MLPs",
               "gap to HGB closed", "targets"], rows),
        "Per seed (test macro-F1; CV best = the search's best trial's CV macro-F1):",
        table(["dataset", "seed", "CV best", "search best", "unweighted", "balanced", "LR",
               "HGB"], seed_rows, digits=4),
        "What won: the best trial's config per dataset and seed (parameters the default "
        "space does not search are the arch's defaults):",
        table(["dataset", "seed", "CV best", "scheme", "loss", "model", "numeric", "width",
               "depth", "dropout", "learning rate"], won_rows, digits=4),
        failures(runs, cases),
        f"Result: {summary}. Target {verdict(met == n)}.",
        b7_why(missed),
    ])
    return summary, met == n, f"## B7: {TITLES['B7'][0]}\n\nTarget: {TITLES['B7'][1]}.\n\n{body}"


def render_b9(runs: dict[str, list[dict[str, Any]]], cases: list[Case], b: Budget,
              numeric_ok: bool, run_line: str) -> tuple[str, str]:
    """(summary row, section) of B9."""
    parts = [run_line, f"Every figure reuses B7's search ({b.describe()}) where it can; "
             "gains are mean ± std over seeds of the per-seed difference on the test split."]
    summary = []
    # (a)
    rows, gains = [], []
    for case in cases:
        got = [r["numeric"] for r in ok_runs(runs, case.key) if "numeric" in r]
        if not got:
            continue
        g = [x["with"] - x["without"] for x in got]
        gains += g
        rows.append([case.key, pm([x["cv_without"] for x in got]),
                     pm([x["cv_with"] for x in got]), pm([x["without"] for x in got]),
                     pm([x["with"] for x in got]), pm(g),
                     ", ".join(str(x["chosen"]) for x in got)])
    parts.append("### (a) Numeric encodings")
    if not numeric_ok:
        parts.append("skipped: not supported by this tree (`space.model.numeric` is refused "
                     "by the space's checks).")
        summary.append("encodings skipped")
    elif not rows:
        parts.append("skipped: no tabular dataset ran.")
        summary.append("encodings skipped")
    else:
        parts += ["The same search with `space = {\"model\": {\"numeric\": "
                  f"{NUMERIC}}}}}` against fixed `standardize`; B7's search (the default "
                  "space) is whichever of the two it is.",
                  table(["dataset", "CV best, standardize", "CV best, searched",
                         "test, standardize", "test, searched", "test gain",
                         "chosen per seed"], rows)]
        summary.append(f"encodings {statistics.mean(gains):+.3f}")
    # (b)
    rows, gains = [], []
    for case in cases:
        got = [r["ensemble"] for r in ok_runs(runs, case.key) if "ensemble" in r]
        if got:
            g = [x["ensemble"] - x["refit"] for x in got]
            gains += g
            rows.append([case.key, pm([x["refit"] for x in got]),
                         pm([x["ensemble"] for x in got]), pm(g)])
    parts.append("### (b) Fold ensemble against refit")
    if not rows:
        parts.append("skipped: not supported by this tree (no trial saved a fold ensemble).")
        summary.append("fold ensemble skipped")
    else:
        parts += ["B7's best trial per seed: its K fold models, each at its best epoch, "
                  "averaged (the trial's `fold_ensemble` saved to its MLflow run, reloaded "
                  "with Keras) against the same config refit on the whole training part "
                  "(B7's number); the same decision rule and test split.",
                  table(["dataset", "test, refit", "test, fold ensemble", "gain"], rows)]
        summary.append(f"fold ensemble {statistics.mean(gains):+.3f}")
    # (c)
    rows, cv_gains, test_gains = [], [], []
    multiclass = [c for c in cases
                  if any(r.get("task") == "multiclass" for r in ok_runs(runs, c.key))]
    for case in multiclass:
        got = [r["decision"] for r in ok_runs(runs, case.key) if "decision" in r]
        if got:
            cg = [x["cv_tuned"] - x["cv"] for x in got]
            tg = [x["test_tuned"] - x["test"] for x in got]
            cv_gains += cg
            test_gains += tg
            rows.append([case.key, pm([x["cv"] for x in got]), pm([x["cv_tuned"] for x in got]),
                         pm(cg), pm([x["test"] for x in got]),
                         pm([x["test_tuned"] for x in got]), pm(tg)])
    parts.append("### (c) Multiclass decision weights")
    if not multiclass:
        parts.append("skipped: no multiclass dataset ran.")
        summary.append("decision weights skipped")
    elif not rows:
        parts.append("skipped: not supported by this tree (the best trials have no "
                     "`decision_weights` / `cv_value_tuned`).")
        summary.append("decision weights skipped")
    else:
        parts += ["B7's best trial per seed on the multiclass datasets: the cross-fitted CV "
                  "estimate (`cv_value_tuned`: fold k scored with weights tuned on the other "
                  "folds) against the held-out gain of `argmax(proba · decision_weights)` "
                  "over `argmax(proba)` on the refit model's test predictions.",
                  table(["dataset", "CV", "CV tuned (cross-fitted)", "CV gain", "test",
                         "test tuned", "test gain"], rows)]
        summary.append(f"decision weights: CV {statistics.mean(cv_gains):+.3f}, test "
                       f"{statistics.mean(test_gains):+.3f}")
    text = "mean test gain: " + "; ".join(summary)
    if failures(runs, cases):
        parts.append(failures(runs, cases))
    parts.append(f"Result: {text}. Target {verdict(None)}.")
    body = "\n\n".join(parts)
    return text, f"## B9: {TITLES['B9'][0]}\n\nTarget: {TITLES['B9'][1]}.\n\n{body}"


def summary_table(rows: dict[str, tuple[str, bool | None]]) -> str:
    return "## Summary\n\n" + table(
        ["id", "figure", "target", "result", "verdict"],
        [[fid, TITLES[fid][0], TITLES[fid][1], text, verdict(met)]
         for fid, (text, met) in rows.items()])


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    global TMP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 seed, 4 trials × 3 folds × ≤6 epochs, 2 datasets")
    ap.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default 3; quick 1)")
    ap.add_argument("--trials", type=int, help="trials per search (default 20; quick 4)")
    for key in ("folds", "epochs", "patience", "startup"):
        ap.add_argument(f"--{key}", type=int, help=f"{key} per search (default: the spec's)")
    ap.add_argument("--only", choices=("B7", "B9"), help="one figure (default both)")
    ap.add_argument("--datasets", help=f"comma-separated, of {', '.join(c.key for c in CASES)}")
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md (else print)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    keys = ([s.strip() for s in args.datasets.split(",")] if args.datasets
            else list(QUICK_CASES) if args.quick else [c.key for c in CASES])
    unknown = [k for k in keys if k not in {c.key for c in CASES}]
    if unknown:
        ap.error(f"--datasets: unknown {unknown}; expected some of "
                 f"{', '.join(c.key for c in CASES)}")
    cases = [c for c in CASES if c.key in keys]
    seeds = list(range(args.seeds if args.seeds else 1 if args.quick else 3))
    b = budget(args.quick, args.trials, folds=args.folds, epochs=args.epochs,
               patience=args.patience, startup=args.startup)
    do7, do9 = args.only in (None, "B7"), args.only in (None, "B9")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sys.path.insert(0, str(ROOT))
    command = " ".join([".venv/bin/python", "scripts/bench_quality.py",
                        *(argv if argv is not None else sys.argv[1:])])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    load_start = bench.loadavg()
    TMP = Path(tempfile.mkdtemp(prefix="ws-quality-"))
    t_all = time.perf_counter()
    try:
        from weightsearch.compat import quiet_optuna

        quiet_optuna()
        numeric_ok = do9 and numeric_probe()
        if do9:
            log(f"B9: space.model.numeric {'supported' if numeric_ok else 'not supported'}")
        runs: dict[str, list[dict[str, Any]]] = {}
        for case in cases:
            log(f"{case.label}: {len(seeds)} seed(s), {b.describe()}")
            t0 = time.perf_counter()
            runs[case.key] = []
            for s in seeds:
                try:
                    got = run_case(case, s, b, b7=do7, b9=do9, numeric_ok=numeric_ok)
                except Exception as exc:  # noqa: BLE001 - a failed run is reported, not fatal
                    traceback.print_exc()
                    first = (str(exc).strip().splitlines() or [""])[0]
                    got = {"seed": s, "error": f"{type(exc).__name__}: {first}"[:300]}
                    log(f"    seed {s}: failed: {got['error']}")
                runs[case.key].append(got)
            log(f"{case.key}: done in {time.perf_counter() - t0:.0f} s")
        minutes = (time.perf_counter() - t_all) / 60
        run_line = (f"Run: {started} UTC, `{command}` ({'quick' if args.quick else 'full'} "
                    f"run, {minutes:.1f} minutes for B7 and B9 together; load average "
                    f"{load_start} at the start, {bench.loadavg()} at the end). "
                    + " ".join(line.lstrip("- ") + "." for line in bench.machine()))
        rows: dict[str, tuple[str, bool | None]] = {}
        sections = []
        if do7:
            text, met, section = render_b7(runs, cases, b, seeds, run_line)
            rows["B7"] = (text, met)
            sections.append(section)
        if do9:
            text, section = render_b9(runs, cases, b, numeric_ok, run_line)
            rows["B9"] = (text, None)
            sections.append(section)
        new = "\n\n".join([summary_table(rows), *sections]) + "\n"
        bench.publish(new, args.out, args.write, ", ".join(rows), minutes)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
