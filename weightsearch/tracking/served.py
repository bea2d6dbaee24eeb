"""The final model in MLflow (``weightsearch train``): its run, and the served model, an
``mlflow.pyfunc.PythonModel`` (:class:`RowsModel`) that takes raw rows and answers in class
names, registered with the ``champion`` alias on its newest version."""

import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from weightsearch.base import first_line
from weightsearch.storage import mask_url
from weightsearch.tracking import NullTracker, TrackingError, quiet_logs

#: The registry alias set on the newest version ``train`` registers.
CHAMPION = "champion"
#: The served model's artifact: the model directory (``model.keras`` + metadata).
MODEL_ARTIFACT = "model"
#: The file MLflow logs and runs to build the served model (models from code).
CODE = Path(__file__).with_name("served_code.py")
#: MLflow column types of a table's raw columns, by :attr:`Column.value_type`.
COLUMN_TYPES = ("double", "long", "boolean", "string")


def start_train_run(
    tracker: NullTracker, run_name: str, tags: dict[str, str], params: dict[str, Any]
) -> str | None:
    """A new top-level run in the tracker's experiment, or ``None`` when tracking is off."""
    if not tracker.enabled:
        return None
    try:
        run = tracker.client.create_run(  # type: ignore[attr-defined]
            tracker.experiment_id, run_name=run_name, tags=tags  # type: ignore[attr-defined]
        )
        tracker.log_params(run.info.run_id, params)
    except Exception as exc:
        raise TrackingError(
            f"cannot create an MLflow run at {mask_url(tracker.uri)!r}: "  # type: ignore[attr-defined]
            f"{first_line(exc)} (use --no-tracking to skip MLflow)"
        ) from exc
    return run.info.run_id


def end_run(tracker: NullTracker, run: str | None, status: str = "FINISHED") -> None:
    """Terminate a run created by :func:`start_train_run` (``FINISHED``/``FAILED``/``KILLED``)."""
    if run is not None and tracker.enabled:
        tracker.client.set_terminated(run, status=status)  # type: ignore[attr-defined]


def tag_other_run(tracker: NullTracker, run: str | None, tags: dict[str, str]) -> bool:
    """Best effort: tag a run of another command (e.g. the source trial's run); ``False`` if
    it is not in this store."""
    if run is None or not tracker.enabled:
        return False
    try:
        tracker.set_tags(run, tags)
    except Exception:
        return False
    return True


def pip_requirements() -> list[str]:
    """Pinned Keras and TensorFlow for the logged model (no inference: it imports the model
    in a subprocess and may look packages up online)."""
    from importlib import metadata

    reqs = []
    for dist in ("keras", "tensorflow-cpu", "tensorflow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
        if dist.startswith("tensorflow"):
            break
    return reqs


@contextmanager
def no_requirement_check() -> Iterator[None]:
    """Skip MLflow's check of the model's requirements against this environment while a
    model is saved: it maps every installed distribution's files to modules first (1-3 s),
    and :func:`pip_requirements` pins the versions installed here anyway."""
    import mlflow.utils.environment as env

    name = "warn_dependency_requirement_mismatches"
    check = getattr(env, name, None)
    if check is None:  # another MLflow version: nothing to skip
        yield
        return
    setattr(env, name, lambda requirements: None)
    try:
        yield
    finally:
        setattr(env, name, check)




def __getattr__(name: str) -> Any:
    # RowsModel subclasses mlflow.pyfunc.PythonModel: made on first use, so importing this
    # module does not import MLflow; a pickled RowsModel finds it here by name.
    if name == "RowsModel":
        return rows_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def rows_model_class() -> type:
    """The class :class:`RowsModel` (an ``mlflow.pyfunc.PythonModel``)."""
    import mlflow.pyfunc
    import pandas as pd

    class RowsModel(mlflow.pyfunc.PythonModel):
        """A trained weightsearch model as MLflow serves it. ``predict`` takes a DataFrame of
        raw rows (columns by name; missing values and unseen categories allowed) and returns
        a DataFrame: ``prediction`` (class names, with the tuned decision rule applied; one
        0/1 ``pred_<label>`` column per label for multi-label), and ``proba_<class>``
        columns with ``params={"probabilities": True}``. The loader (``"module:function"``)
        that reopens the model directory artifact is the model config's ``loader``
        (:data:`CODE` builds the model, so nothing is pickled)."""

        def __init__(self, loader: str | None = None) -> None:
            self.loader = loader  # kept for models pickled before models-from-code
            self.model: Any = None

        def load_context(self, context: Any) -> None:
            loader = (context.model_config or {}).get("loader") or self.loader
            module, _, name = loader.partition(":")
            load = getattr(importlib.import_module(module), name)
            self.model = load(context.artifacts[MODEL_ARTIFACT])

        def predict(  # a DataFrame hint: MLflow neither warns nor infers a schema from it
            self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
        ) -> pd.DataFrame:
            probabilities = bool((params or {}).get("probabilities", False))
            return self.model.predict_frame(model_input, probabilities=probabilities)

    RowsModel.__module__ = __name__
    RowsModel.__qualname__ = "RowsModel"
    return RowsModel


def signature_of(example: Any, output: Any, column_types: dict[str, str] | None) -> Any:
    """The served model's signature: ``column_types`` (name → one of :data:`COLUMN_TYPES`)
    as the input columns when given, else inferred from ``example``; outputs inferred from
    ``output``; the ``probabilities`` parameter (default false)."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, Schema

    inferred = infer_signature(example, output, params={"probabilities": False})
    if not column_types:
        return inferred
    inputs = Schema([ColSpec(kind, name) for name, kind in column_types.items()])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def log_served_model(
    tracker: NullTracker,
    run: str | None,
    *,
    model_dir: str | Path,
    loader: str,
    example: Any,
    output: Any,
    column_types: dict[str, str] | None,
    registered_model_name: str | None,
    description: str | None = None,
    version_tags: dict[str, str] | None = None,
    training: Any = None,
) -> dict[str, Any] | None:
    """Log ``model_dir`` as a :class:`RowsModel` on run ``run`` (signature
    :func:`signature_of`, ``example`` as the input example), log ``training`` (an
    ``mlflow.data`` dataset from :func:`training_input`) as the run's training input, then
    register the model as a new version of ``registered_model_name`` (created if needed)
    and point the :data:`CHAMPION` alias at it.

    Returns ``{"model_uri", "model_id", "registered_model", "version", "version_uri",
    "alias"}`` or ``None`` when tracking is off. Works offline: the requirements are the
    Keras and TensorFlow installed here, pinned (weightsearch must be installed where the
    model is loaded); nothing is inferred."""
    if run is None or not tracker.enabled:
        return None
    import contextlib
    import io
    import types

    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    quiet_logs()
    uri = tracker.uri  # type: ignore[attr-defined]

    def save_model(path: str, **kwargs: Any) -> None:
        kwargs.pop("validate_serving_input", None)  # an option of Model.log, not of the flavour
        mlflow.pyfunc.save_model(path=path, **kwargs)

    flavor = types.SimpleNamespace(__name__="mlflow.pyfunc", save_model=save_model)
    previous_uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        signature = signature_of(example, output, column_types)
        # The flavour API reads the global tracking URI and active run: set both for this
        # call only. Keras prints progress bars to stdout, hence the redirect.
        mlflow.set_tracking_uri(uri)
        nested = mlflow.active_run() is not None
        with (
            mlflow.start_run(run_id=run, nested=nested),
            contextlib.redirect_stdout(io.StringIO()),
            no_requirement_check(),
            no_artifact_bar(),  # MLflow copies the model directory in as an artifact
        ):
            if training is not None:
                mlflow.log_input(training, context="training")
            info = Model.log(
                None,
                name="model",
                flavor=flavor,
                python_model=str(CODE),
                model_config={"loader": loader},
                artifacts={MODEL_ARTIFACT: str(model_dir)},
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                validate_serving_input=False,
            )
        out: dict[str, Any] = {
            "model_uri": info.model_uri,
            "model_id": info.model_id,
            "registered_model": None,
            "version": None,
            "version_uri": None,
            "alias": None,
        }
        if registered_model_name:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            try:
                client.create_registered_model(registered_model_name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = client.create_model_version(
                registered_model_name,
                source=info.model_uri,
                run_id=run,
                tags=version_tags or {},
                description=description,
                model_id=info.model_id,
            )
            client.set_registered_model_alias(registered_model_name, CHAMPION, version.version)
            out.update(
                registered_model=registered_model_name,
                version=int(version.version),
                version_uri=f"models:/{registered_model_name}/{version.version}",
                alias=f"models:/{registered_model_name}@{CHAMPION}",
            )
        return out
    except Exception as exc:
        raise TrackingError(
            f"cannot log the model to MLflow at {mask_url(uri)!r}: {first_line(exc)} "
            "(use --no-tracking to skip MLflow)"
        ) from exc
    finally:
        mlflow.set_tracking_uri(previous_uri)


def training_input(data: Any, targets: Any, *, source: str, name: str) -> Any:
    """An ``mlflow.data`` dataset describing the training data (its schema, row count and
    digest; MLflow logs the description, not the rows): ``data`` a DataFrame (``targets``
    the label column in it) or an array (``targets`` the label array)."""
    import warnings

    import mlflow.data
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    try:
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": either is fine
            warnings.simplefilter("ignore", UserWarning)
            src = resolve_dataset_source(source)
    except Exception:  # noqa: BLE001 - a builtin: or python: source has no MLflow source type
        src = None
    if hasattr(data, "columns"):
        return mlflow.data.from_pandas(data, source=src, targets=targets, name=name)
    return mlflow.data.from_numpy(data, source=src, targets=targets, name=name)


@contextmanager
def no_artifact_bar() -> Iterator[None]:
    """MLflow's "Downloading artifacts" bar off (a fetch, or the model copied into a run)
    inside a command, unless the user set ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``."""
    import os

    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    if name in os.environ:
        yield
        return
    os.environ[name] = "false"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def fetch_artifact(uri: str, run: str, path: str, dst: str | Path) -> str:
    """Download artifact ``path`` of MLflow run ``run`` into ``dst``; the local path."""
    from mlflow import MlflowClient

    quiet_logs()
    try:
        with no_artifact_bar():
            return str(MlflowClient(tracking_uri=uri).download_artifacts(run, path, str(dst)))
    except Exception as exc:
        raise TrackingError(
            f"cannot fetch {path!r} of MLflow run {run} from {mask_url(uri)!r}: "
            f"{first_line(exc)}"
        ) from exc


def train_runs(uri: str, experiment: str, study: str, limit: int = 20) -> list[dict[str, Any]]:
    """The final-model runs of ``study`` (``weightsearch train``), newest first: ``run``,
    ``trial``, ``final`` (refit or fold_ensemble), ``test_macro_f1`` and ``other`` ({the
    other final model: its test macro-F1}, where train scored it). A local SQLite store that
    does not exist gives ``[]`` (and is not created)."""
    from mlflow import MlflowClient

    from weightsearch.storage import parse_url

    quiet_logs()
    parsed = parse_url(uri)
    if parsed.kind == "sqlite" and parsed.path is not None and not parsed.path.is_file():
        return []
    try:
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        runs = client.search_runs(
            [exp.experiment_id], filter_string="tags.`weightsearch.role` = 'train'",
            order_by=["attributes.start_time DESC"], max_results=limit,
        )
    except Exception as exc:
        raise TrackingError(
            f"cannot use the MLflow tracking URI {mask_url(uri)!r}: {first_line(exc)} "
            "(use --no-tracking to skip MLflow)"
        ) from exc
    prefix = "test_macro_f1."
    return [
        {
            "run": r.info.run_id,
            "trial": r.data.tags.get("weightsearch.source_trial", "?"),
            "final": r.data.params.get("final", "refit"),
            "test_macro_f1": r.data.metrics.get("test_macro_f1"),
            "other": {k[len(prefix):]: v for k, v in r.data.metrics.items()
                      if k.startswith(prefix)},
        }
        for r in runs if r.data.tags.get("weightsearch.study") == study
    ]
