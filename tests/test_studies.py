"""Every shipped study spec validates against its data and the registries (what `validate` does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightsearch import engines
from weightsearch import spec as spec_mod

STUDIES = sorted(Path(__file__).resolve().parent.parent.glob("studies/*.toml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_shipped_study_validates(path: Path) -> None:
    prepared = engines.prepare(spec_mod.load(path))
    names = {name for name, _ in prepared.space.describe()}
    assert {"weighting.scheme", "loss.name", "model.arch"} <= names
    assert len(prepared.train.y) + len(prepared.test_idx) == len(prepared.data.y)
    if prepared.spec.search.baseline_first:  # the baseline can be queued first
        assert "none" in prepared.space.choices["weighting"].choices
        assert "crossentropy" in prepared.space.choices["loss"].choices
