"""Memory across trials in one process (scripts/memory_probe.py).

TensorFlow leaks a few MB per model trained with ``fit`` even after ``clear_session``
(tensorflow/tensorflow#61791; measured here: ~1.5 MB per Adam model with the optimiser built
before fit, ~3.7 MB without). The probe measures that
leak in the same process with bare Keras fits, and this test bounds what weightsearch adds on
top: no leaked callbacks, models, figures or MLflow client state. ``search.trials_per_process``
recycles worker processes to bound TensorFlow's own part (tests/test_workers.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_rss_growth_per_trial_is_only_tensorflows(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "memory_probe.py"), "--trials", "20",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert len(result["rss_per_trial_mb"]) == 20
    # what weightsearch adds per trial beyond TensorFlow's own per-model leak
    assert result["excess_mb_per_trial"] < 1.0, result
