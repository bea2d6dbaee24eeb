"""RSS across trials of a tiny study in ONE process, beside a plain Keras loop.

    python scripts/memory_probe.py --trials 20 --out probe.json

Runs ``--trials`` tiny trials (2 folds, 1 epoch, MLflow tracking on a SQLite store) in
this process and records, after each, the RSS and the process's peak RSS so far
(``ru_maxrss``). Then, in the same process, it fits the same number of pairs of models the
way a plain Keras loop does (``fit``, then ``keras.backend.clear_session()``, nothing else)
and records RSS after each pair: what stock TensorFlow/Keras keeps per trained model
(tensorflow/tensorflow#97697), which ``training.clear`` releases and ``clear_session`` alone
does not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SPEC = """
name = "memory"
seed = 0
[data]
source = "builtin:synthetic"
test_size = 0.2
options = {{ n_samples = 200, n_features = 8, weights = [0.8, 0.2], class_sep = 2.0 }}
[cv]
folds = 2
epochs = 1
batch_size = 32
patience = 0
[search]
n_trials = {trials}
sampler = "random"
pruner = "none"
storage = "sqlite:///{tmp}/optuna.db"
[space.weighting]
scheme = ["none", "balanced", "sqrt"]
[space.loss]
name = ["crossentropy", "focal"]
[space.model]
arch = "mlp"
depth = [1, 2]
width = [8, 16]
[tracking]
mlflow_uri = "sqlite:///{tmp}/mlflow.db"
"""


def peak_mb() -> float:
    """The process's peak RSS so far (Linux reports ``ru_maxrss`` in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def slope(values: list[float], warmup: int) -> float:
    """MB per step after the warm-up: the Theil-Sen slope (the median of the pairwise slopes;
    Sen, JASA 1968), so that one trial whose RSS dips or jumps by the allocator's whim does not
    decide it, as it can a least-squares fit over 15 points."""
    import numpy as np

    y = np.asarray(values[warmup:], dtype=float)
    i, j = np.triu_indices(len(y), k=1)
    return float(np.median((y[j] - y[i]) / (j - i))) if len(y) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from weightsearch import engines, training
    from weightsearch import spec as spec_mod
    from weightsearch.data import model_targets
    from weightsearch.tracking import make_tracker

    tmp = tempfile.mkdtemp(prefix="ws-mem-")
    spec = spec_mod.parse(__import__("tomllib").loads(SPEC.format(trials=args.trials, tmp=tmp)))
    prepared = engines.prepare(spec)
    training.configure_threads()
    tracker = make_tracker(True, spec.tracking.mlflow_uri, spec.experiment)
    ours: list[float] = []
    peaks: list[float] = []

    class Probe:
        def start(self, n: int, best: float | None = None) -> None: ...
        def epoch(self, *a: object) -> None: ...
        def trial_done(self, study: object, trial: object) -> None:
            ours.append(rss_mb())
            peaks.append(peak_mb())

    t0 = time.perf_counter()
    engines.run_study(prepared, n_trials=args.trials, tracker=tracker, progress=Probe())
    study_seconds = time.perf_counter() - t0

    # the same number of plain Keras fits (2 folds per trial), same process, released the
    # way a plain Keras loop does: clear_session only
    import keras

    ds = prepared.train
    config = {"weighting": {"scheme": "none", "params": {}},
              "loss": {"name": "crossentropy", "params": {}},
              "model": {"arch": "mlp", "params": {"depth": 1, "width": 16}},
              "train": {"learning_rate": 1e-3, "optimizer": "adam"}}
    bare: list[float] = []
    for _ in range(args.trials):
        for _fold in range(2):
            built = training.build(config, x=ds.x, y=ds.y, task=ds.task, n_classes=ds.n_classes)
            built.model.fit(ds.x, model_targets(ds.y, ds.task, ds.n_classes), epochs=1,
                            batch_size=32, verbose=0)
            del built
        keras.backend.clear_session(free_memory=True)
        bare.append(rss_mb())
    result = {
        "trials": args.trials,
        "warmup": args.warmup,
        "rss_per_trial_mb": [round(v, 1) for v in ours],
        "peak_rss_per_trial_mb": [round(v, 1) for v in peaks],
        "rss_per_bare_pair_mb": [round(v, 1) for v in bare],
        "ours_mb_per_trial": slope(ours, args.warmup),
        "keras_mb_per_two_fits": slope(bare, args.warmup),
        "growth_after_warmup_mb": ours[-1] - ours[args.warmup - 1],
        "peak_growth_after_warmup_mb": peaks[-1] - peaks[args.warmup - 1],
        "study_seconds": study_seconds,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
