"""Benchmark B11: the default space re-checked, one factor at a time, on real tables; written
into BENCHMARKS.md.

    .venv/bin/python scripts/bench_defaults.py --quick     # smoke run, prints the section
    .venv/bin/python scripts/bench_defaults.py --write     # the full run, into the file

The default space of a table searches only the weighting scheme and the loss; the MLP's
architecture and training parameters stay at their defaults (``models.arch_params("mlp")``,
``space.TRAIN_PARAMS``, ``spec.CVSpec``), so those defaults decide most of the model quality
a new user gets. Each CV run here is the product's own objective on one fixed configuration:
``weightsearch.search(frame, target=…, space={fixed values}, n_trials=1, folds=5, epochs=30,
seed=s, progress=False, cv={"patience": 5})`` → ``result.best_value`` (CV macro-F1, the
untuned trial value). The baseline fixes scheme ``sqrt`` and ``crossentropy`` (the scheme that
won on every real table of issue 15) and leaves everything else at its default; each variant
changes one default (:data:`VARIANTS`). The seed draws the split, the folds and the models'
initialisation, and every variant runs on the same seeds, so Δ is a paired difference.

Decision rule (:func:`decide`): a default changes only where the mean Δ over seeds is
positive on every dataset and the mean of those over datasets exceeds 0.005. With
``--write`` the B11 summary row and section of BENCHMARKS.md are replaced (or added) and
every other section stays (``bench.merge_report``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: table, fmt, log, machine, merge_report, …)
from bench import ROOT, log, table, verdict  # noqa: E402
from bench_quality import CASES, Case, mean_std, pm  # noqa: E402

FID = "B11"
TITLE = "Default space re-check"
RULE = ("a default changes only where the mean Δ is positive on every dataset and the mean "
        "over datasets exceeds 0.005")
MARGIN = 0.005
BASE_SPACE: dict[str, Any] = {"weighting": {"scheme": "sqrt"}, "loss": {"name": "crossentropy"},
                              "model": {"arch": "mlp"}}
BASE_CV: dict[str, int] = {"folds": 5, "epochs": 30, "patience": 5}  # spec.CVSpec's defaults
DATASETS = ("breast-cancer", "wine", "diabetes", "penguins")
QUICK_DATASETS = ("wine", "penguins")
QUICK_VARIANTS = ("width=128", "lr=1e-3")
WARMUP_SEED = 1000  # the discarded warm-up run of each dataset


@dataclass(frozen=True)
class Variant:
    """One changed default: ``section`` (``model``, ``train`` or ``cv``) → ``{key: value}``."""
    key: str
    label: str
    change: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


VARIANTS = [
    Variant("baseline", "baseline (the run's defaults)"),
    *(Variant(f"width={w}", f"width {w}", {"model": {"width": w}}) for w in (32, 64, 128, 256)),
    *(Variant(f"depth={d}", f"depth {d}", {"model": {"depth": d}}) for d in (1, 3)),
    *(Variant(f"dropout={p}", f"dropout {p}", {"model": {"dropout": p}}) for p in (0.0, 0.3)),
    Variant("batch_norm", "batch_norm true", {"model": {"batch_norm": True}}),
    Variant("adamw", "optimizer adamw (Keras default weight_decay 0.004)",
            {"train": {"optimizer": "adamw"}}),
    *(Variant(f"lr={lr}", f"learning_rate {lr}", {"train": {"learning_rate": float(lr)}})
      for lr in ("3e-4", "1e-3", "3e-3")),
    Variant("epochs=60", "epochs 60, patience 10", {"cv": {"epochs": 60, "patience": 10}}),
    Variant("before-b11", "width 64, learning_rate 1e-3 (the defaults before B11)",
            {"model": {"width": 64}, "train": {"learning_rate": 1e-3}}),
]
BY_KEY = {v.key: v for v in VARIANTS}


# ---------------------------------------------------------------------------------------
# pure helpers (tested in tests/test_bench.py)
# ---------------------------------------------------------------------------------------
def run_setup(variant: Variant) -> tuple[dict[str, Any], dict[str, int]]:
    """(space, cv) of one CV run: :data:`BASE_SPACE` and :data:`BASE_CV` with the variant's
    ``model``/``train`` keys added to the space and its ``cv`` keys replacing the CV's."""
    unknown = set(variant.change) - {"model", "train", "cv"}
    if unknown:
        raise ValueError(f"variant {variant.key}: expected sections model, train or cv, but "
                         f"got {sorted(unknown)}")
    space = {k: dict(v) for k, v in BASE_SPACE.items()}
    for section in ("model", "train"):
        if section in variant.change:
            space[section] = {**space.get(section, {}), **variant.change[section]}
    return space, {**BASE_CV, **variant.change.get("cv", {})}


def current_default(section: str, key: str) -> Any:
    """The code's default of ``key`` in ``section`` (``model``: the MLP's parameters,
    ``train``: :data:`space.TRAIN_PARAMS`, ``cv``: :class:`spec.CVSpec`)."""
    from weightsearch import models, space, spec

    if section == "model":
        return models.arch_params("mlp")[key].default
    if section == "train":
        return space.TRAIN_PARAMS[key].default
    return getattr(spec.CVSpec(), key)


def at_default(variant: Variant) -> bool:
    """Whether every change of ``variant`` is already the default (it would rerun the
    baseline); never for the baseline itself."""
    return bool(variant.change) and all(
        current_default(section, k) == v
        for section, keys in variant.change.items() for k, v in keys.items())


def paired_deltas(values: Mapping[int, float], base: Mapping[int, float]) -> list[float]:
    """``value − baseline`` per seed, over the seeds both have (in seed order)."""
    return [values[s] - base[s] for s in sorted(set(values) & set(base))]


def decide(mean_deltas: Mapping[str, float], margin: float = MARGIN) -> bool:
    """The decision rule: every dataset's mean Δ > 0 and their mean > ``margin``."""
    if not mean_deltas:
        return False
    return (all(d > 0 for d in mean_deltas.values())
            and statistics.mean(mean_deltas.values()) > margin)


def signed_pm(values: Sequence[float], digits: int = 3) -> str:
    """``"+0.004 ± 0.006"``: mean (with its sign) ± sample std."""
    m, s = mean_std(values)
    return f"{m:+.{digits}f} ± {s:.{digits}f}"


# ---------------------------------------------------------------------------------------
# one CV run
# ---------------------------------------------------------------------------------------
def cv_run(case: Case, variant: Variant, seed: int) -> dict[str, Any]:
    """The product's CV macro-F1 of the baseline with ``variant``'s change, and its cost."""
    import weightsearch

    space, cv = run_setup(variant)
    t0 = time.perf_counter()
    res = weightsearch.search(
        case.data(), target=case.target, space=space, n_trials=1, folds=cv["folds"],
        epochs=cv["epochs"], seed=seed, progress=False, cv={"patience": cv["patience"]},
        name=f"b11-{case.key}-{variant.key}-{seed}")
    seconds = time.perf_counter() - t0
    trial = res.best_trial
    got = trial.user_attrs["config"]
    want_params = {**space["model"], **space.get("train", {})}
    have = {**got["model"].get("params", {}), "arch": got["model"]["arch"], **got["train"]}
    wrong = {k: (v, have.get(k)) for k, v in want_params.items() if have.get(k) != v}
    if got["weighting"]["scheme"] != "sqrt" or got["loss"]["name"] != "crossentropy" or wrong:
        raise RuntimeError(f"the trial ran another config than asked: {wrong or got}")
    runs = trial.user_attrs.get("epochs_run", [])
    return {"f1": float(res.best_value), "seconds": seconds,
            "fit_seconds": float(trial.user_attrs.get("fit_seconds", float("nan"))),
            "epochs_run": float(statistics.mean(runs)) if runs else None,
            "capped": sum(r >= cv["epochs"] for r in runs), "folds": len(runs)}


# ---------------------------------------------------------------------------------------
# the section
# ---------------------------------------------------------------------------------------
Runs = dict[tuple[str, str, int], dict[str, Any]]  # (variant, dataset, seed) → result


def scores(runs: Runs, variant: str, dataset: str) -> dict[int, float]:
    return {s: r["f1"] for (v, d, s), r in runs.items()
            if v == variant and d == dataset and "error" not in r}


def defaults_line() -> str:
    """The tree's defaults, read from the code (the arch's, the train parameters', the CV's)."""
    from weightsearch import models, space, spec

    mlp = ", ".join(f"{k} {p.default}" for k, p in models.arch_params("mlp").items()
                    if k != "numeric")
    train = ", ".join(f"{k} {p.default}" for k, p in space.TRAIN_PARAMS.items())
    cvs = spec.CVSpec()
    return (f"MLP: {mlp}; numeric encoding {space.DEFAULT_NUMERIC}; train: {train}; CV: "
            f"folds {cvs.folds}, epochs {cvs.epochs}, patience {cvs.patience}, batch size "
            f"{cvs.batch_size}")


def render(runs: Runs, cases: list[Case], variants: list[Variant], seeds: list[int],
           run_line: str) -> tuple[str, str]:
    """(summary row text, section) of B11."""
    base = {c.key: scores(runs, "baseline", c.key) for c in cases}
    rows, decisions, seed_rows = [], [], []
    base_secs = [r["seconds"] for (v, _, _), r in runs.items()
                 if v == "baseline" and "error" not in r]
    for var in variants:
        cells, means = [], {}
        for c in cases:
            vals = scores(runs, var.key, c.key)
            if not vals:
                cells.append("failed")
                continue
            mean = statistics.mean(vals.values())
            if var.key == "baseline":
                cells.append(pm(list(vals.values()), 4))
                continue
            d = paired_deltas(vals, base[c.key])
            if not d:
                cells.append(f"{mean:.4f} (no baseline)")
                continue
            means[c.key] = statistics.mean(d)
            cells.append(f"{mean:.4f} ({signed_pm(d, 4)})")
        secs = [r["seconds"] for (v, _, _), r in runs.items()
                if v == var.key and "error" not in r]
        epochs = [r["epochs_run"] for (v, _, _), r in runs.items()
                  if v == var.key and "error" not in r and r["epochs_run"] is not None]
        time_cell = "—"
        if secs:
            time_cell = f"{statistics.mean(secs):.1f}"
            if base_secs and var.key != "baseline":
                time_cell += f" ({statistics.mean(secs) / statistics.mean(base_secs):.2f}×)"
        if var.key == "baseline":
            rows.append([var.label, *cells, "—", "—", "—", time_cell,
                         statistics.mean(epochs) if epochs else None])
            continue
        complete = len(means) == len(cases)
        change = complete and decide(means)
        if change:
            decisions.append((var, statistics.mean(means.values())))
        rows.append([var.label, *cells, f"{sum(d > 0 for d in means.values())} of {len(cases)}",
                     f"{statistics.mean(means.values()):+.4f}" if means else "—",
                     ("**change**" if change else "keep") if complete else "incomplete",
                     time_cell, statistics.mean(epochs) if epochs else None])
    order = {**{v.key: i for i, v in enumerate(variants)},
             **{c.key: i for i, c in enumerate(cases)}}
    for (v, d, s), r in sorted(runs.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]],
                                                             kv[0][2])):
        if "error" in r:
            continue
        seed_rows.append([v, d, s, f"{r['f1']:.4f}",
                          f"{r['f1'] - base[d][s]:+.4f}" if s in base[d] else None,
                          f"{r['seconds']:.1f}", f"{r['fit_seconds']:.1f}",
                          None if r["epochs_run"] is None else f"{r['epochs_run']:.1f}",
                          f"{r['capped']} of {r['folds']}"])
    failed = [f"- {v}, {d}, seed {s}: `{r['error']}`" for (v, d, s), r in runs.items()
              if "error" in r]
    if decisions:
        best = max(decisions, key=lambda x: x[1])
        summary = ("the rule changes " + ", ".join(f"{v.label} ({m:+.4f})" for v, m in decisions)
                   + f"; largest gain {best[0].label}")
    else:
        summary = ("no default changes: no variant gains on every dataset and by more than "
                   f"{MARGIN} on average")
    setup = (
        f"{run_line}\n\n"
        f"Baseline: the defaults of the tree that ran ({defaults_line()}) with the weighting "
        "fixed to `sqrt` and the loss to `crossentropy` (the default space searches only "
        "those two; `sqrt` won on every real table of issue 15). Each CV run is the "
        "product's objective on one "
        "fixed config: `weightsearch.search(frame, target, space={fixed values}, n_trials=1, "
        "folds, epochs, seed, cv={\"patience\"})` → `result.best_value`, the CV macro-F1 "
        "(mean over folds of each fold's best-epoch validation macro-F1, untuned decision). "
        f"Space of the baseline: `{BASE_SPACE}`; each variant adds one key (the "
        "before-B11 row two) to `space.model` or `space.train`, or (epochs 60) replaces "
        "`epochs` and `cv.patience`. "
        "`adamw` is `keras.optimizers.AdamW` with Keras's default `weight_decay` = 0.004 "
        "(the product passes only the learning rate). "
        f"Seeds {seeds}: the seed draws the stratified 80/20 split, the folds and the "
        "initialisation; all variants share the seeds, so Δ is the per-seed paired difference "
        "variant − baseline, shown as mean ± sample std over seeds. Datasets: "
        + "; ".join(c.label for c in cases) + "."
    )
    headers = ["variant", *(f"{c.key}: CV macro-F1 (Δ)" for c in cases), "datasets with Δ > 0",
               "mean Δ over datasets", "decision", "seconds per CV run (× baseline)",
               "mean epochs run per fold"]
    body = "\n\n".join(p for p in [
        setup,
        f"Decision rule: {RULE}.",
        table(headers, rows, digits=1),
        "Seconds per CV run: wall time of the whole `search()` call (data preparation, 5 "
        "folds, threshold tuning), mean over datasets and seeds, after one discarded warm-up "
        "run per dataset; the runs of one dataset and seed ran back to back, so load drifts "
        "hit all variants alike. Epochs run per fold: mean over folds, datasets and seeds.",
        "Per run (fit seconds: the trial's own training time; capped: folds that ran to the "
        "epoch limit without early stopping):",
        table(["variant", "dataset", "seed", "CV macro-F1", "Δ", "seconds", "fit seconds",
               "epochs run (mean)", "capped"], seed_rows, digits=4),
        ("Failed runs (left out of the means above):\n\n" + "\n".join(failed)) if failed
        else "",
        f"Result: {summary}. Target {verdict(None)}.",
    ])
    return summary, f"## {FID}: {TITLE}\n\nTarget: {RULE}.\n\n{body}"


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: 1 seed, {', '.join(QUICK_DATASETS)}, the baseline and "
                         f"{', '.join(QUICK_VARIANTS)}")
    ap.add_argument("--seeds", type=int, help="number of seeds 0..N-1 (default 3; quick 1)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds start here (e.g. to replicate on fresh seeds)")
    ap.add_argument("--datasets", help=f"comma-separated, of {', '.join(DATASETS)}")
    ap.add_argument("--variants", help=f"comma-separated, of {', '.join(BY_KEY)} (the "
                                       "baseline always runs)")
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md (else print)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    keys = ([s.strip() for s in args.datasets.split(",")] if args.datasets
            else list(QUICK_DATASETS) if args.quick else list(DATASETS))
    if set(keys) - set(DATASETS):
        ap.error(f"--datasets: unknown {sorted(set(keys) - set(DATASETS))}; expected some of "
                 f"{', '.join(DATASETS)}")
    vkeys = ([s.strip() for s in args.variants.split(",")] if args.variants
             else list(QUICK_VARIANTS) if args.quick else list(BY_KEY))
    if set(vkeys) - set(BY_KEY):
        ap.error(f"--variants: unknown {sorted(set(vkeys) - set(BY_KEY))}; expected some of "
                 f"{', '.join(BY_KEY)}")
    variants = [v for v in VARIANTS if v.key == "baseline" or v.key in vkeys]
    skipped = [v for v in variants if at_default(v)]
    variants = [v for v in variants if v not in skipped]
    if skipped:
        log(f"not run, being the defaults now: {', '.join(v.label for v in skipped)}")
    cases = [c for c in CASES if c.key in keys]
    seeds = [args.first_seed + i for i in range(args.seeds if args.seeds else 1 if args.quick
                                                else 3)]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    command = " ".join([".venv/bin/python", "scripts/bench_defaults.py",
                        *(argv if argv is not None else sys.argv[1:])])
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    load_start = bench.loadavg()
    t_all = time.perf_counter()
    from weightsearch.compat import quiet_optuna

    quiet_optuna()
    runs: Runs = {}
    total, done = len(cases) * len(seeds) * len(variants), 0
    for case in cases:
        # a discarded first run per dataset: TensorFlow's start and tracing for this input
        # shape would otherwise be charged to whichever variant runs first
        try:
            warm = cv_run(case, BY_KEY["baseline"], WARMUP_SEED)
            log(f"{case.key}: warm-up run (discarded) {warm['seconds']:.1f} s")
        except Exception as exc:  # noqa: BLE001 - the seeds' runs report their own failures
            log(f"{case.key}: warm-up run failed: {type(exc).__name__}: {exc}")
        for s in seeds:
            for var in variants:
                try:
                    r = cv_run(case, var, s)
                    msg = f"CV macro-F1 {r['f1']:.4f}, {r['seconds']:.1f} s"
                except Exception as exc:  # noqa: BLE001 - a failed run is reported, not fatal
                    traceback.print_exc()
                    first = (str(exc).strip().splitlines() or [""])[0]
                    r = {"error": f"{type(exc).__name__}: {first}"[:300]}
                    msg = f"failed: {r['error']}"
                runs[(var.key, case.key, s)] = r
                done += 1
                log(f"[{done}/{total}] {case.key} seed {s} {var.key}: {msg}")
    minutes = (time.perf_counter() - t_all) / 60
    run_line = (f"Run: {started} UTC, `{command}` ({'quick' if args.quick else 'full'} run, "
                f"{total} CV runs in {minutes:.1f} minutes; load average {load_start} at the "
                f"start, {bench.loadavg()} at the end). "
                + " ".join(line.lstrip("- ") + "." for line in bench.machine()))
    if skipped:
        run_line += (" Not run, being the defaults of this tree: "
                     + ", ".join(v.label for v in skipped) + ".")
    summary, section = render(runs, cases, variants, seeds, run_line)
    new = "## Summary\n\n" + table(["id", "figure", "target", "result", "verdict"],
                                   [[FID, TITLE, RULE, summary, verdict(None)]]) + \
        "\n\n" + section + "\n"
    bench.publish(new, args.out, args.write, FID, minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
