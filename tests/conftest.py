"""Shared fixtures. TensorFlow is slow to import and to train on 2 cores: keep data tiny."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("WEIGHTSEARCH_THREADS", "2")

import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TINY_SPEC = """
name = "{name}"
seed = 0
[data]
source = "builtin:synthetic"
test_size = 0.2
options = {{ n_samples = 160, n_features = 6, weights = [0.75, 0.25], class_sep = 2.0 }}
[cv]
folds = 2
epochs = 2
batch_size = 32
patience = 0
[search]
n_trials = {n_trials}
sampler = "random"
pruner = "{pruner}"
storage = "sqlite:///{tmp}/optuna.db"
[space.weighting]
scheme = ["none", "balanced", "effective_number"]
beta = [0.9, 0.999]
[space.loss]
name = ["crossentropy", "focal"]
gamma = [0.5, 3.0]
[space.model]
arch = "mlp"
depth = 1
width = [8, 16]
[tracking]
mlflow_uri = "sqlite:///{tmp}/mlflow.db"
"""


@pytest.fixture
def tiny_spec(tmp_path: Path):
    """Write a tiny study spec into tmp_path and return a factory for its path."""

    def make(name: str = "tiny", n_trials: int = 3, pruner: str = "none", **extra: str) -> Path:
        text = TINY_SPEC.format(name=name, n_trials=n_trials, pruner=pruner, tmp=tmp_path)
        path = tmp_path / f"{name}.toml"
        path.write_text(text + "".join(extra.values()))
        return path

    return make


# ---- PostgreSQL ----------------------------------------------------------------------------

PG = "postgresql://postgres@127.0.0.1:5432"
#: Set in CI (``.ci/run`` exports WEIGHTSEARCH_REQUIRE_POSTGRES=1): no server fails, not skips.
REQUIRE_PG = ("CI", "WEIGHTSEARCH_REQUIRE_POSTGRES")


def _pg_admin():
    import psycopg

    return psycopg.connect(f"{PG}/test", autocommit=True, connect_timeout=3)


def postgres_unreachable(exc: BaseException) -> None:
    """Fail (in CI) or skip (elsewhere) a test whose PostgreSQL server cannot be reached."""
    required = [name for name in REQUIRE_PG if os.environ.get(name)]
    if required:
        pytest.fail(f"PostgreSQL at {PG} is unreachable and {required[0]} is set: {exc}")
    pytest.skip(f"PostgreSQL at {PG} is unreachable (not in CI, so skipping): {exc}")


@pytest.fixture
def pg_urls():
    """Two fresh databases (Optuna, MLflow) on the local server; dropped afterwards."""
    try:
        admin = _pg_admin()
    except Exception as exc:  # noqa: BLE001
        postgres_unreachable(exc)
    name = f"ws_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"CREATE DATABASE {name}_mlflow")
        try:
            yield f"{PG}/{name}", f"{PG}/{name}_mlflow"
        finally:
            for db in (name, f"{name}_mlflow"):
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses the local PostgreSQL server (the ``pg_urls`` fixture) is marked
    ``postgres``, so ``-m postgres`` selects them all."""
    for item in items:
        if "pg_urls" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def unit_config(**sections: dict) -> dict:
    """A small training config (multiclass penguins, a tiny MLP, no tracking) as
    ``parse_config`` takes it; ``sections`` replace or add whole sections (``decision=``) and
    ``numeric=`` sets the model's numeric encoding."""
    numeric = sections.pop("numeric", None)
    model = {"arch": "mlp", "params": {"depth": 1, "width": 8}}
    if numeric is not None:
        model["numeric"] = numeric
    return {
        "source": {"study": "unit", "trial": 0},
        "data": {"source": "builtin:penguins", "task": "multiclass", "test_size": 0.2, "seed": 0,
                 "classes": ["Adelie", "Chinstrap", "Gentoo"]},
        "weighting": {"scheme": "none", "params": {}},
        "loss": {"name": "crossentropy", "params": {}},
        "model": model,
        "train": {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 32, "epochs": 1},
        "tracking": {"enabled": False},
        **sections,
    }
