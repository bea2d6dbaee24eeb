"""Use a trained model: :func:`load_model` reloads a model directory written by
``weightsearch train``; :func:`predict` writes predictions of new data to CSV."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weightsearch.production.files import (
    META_FILE,
    META_FORMAT,
    MODEL_FILE,
    ExportError,
    write_text,
)


@dataclass
class TrainedModel:
    """A saved model with its metadata: what ``predict`` needs to decide class names."""

    model: Any
    meta: dict[str, Any]
    path: Path

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def classes_(self) -> np.ndarray:
        """The class (or label) names in output order, as scikit-learn estimators have them:
        ``predict`` returns these names, so ``sklearn.metrics`` takes
        ``labels=model.classes_``. Integer labels (``y`` of 0/1 or 0..C-1, stored as their
        text) come back as integers, so predictions compare with the ``y`` they came from."""
        names = self.classes
        if all(n.lstrip("-").isdigit() and str(int(n)) == n for n in names):
            return np.asarray([int(n) for n in names], dtype=np.int64)
        return np.asarray(names, dtype=object)

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def threshold(self) -> Any:
        return self.meta.get("threshold")

    @property
    def positive(self) -> int | None:
        pos = self.meta.get("positive")
        return None if pos is None else self.classes.index(pos)

    @property
    def feature_names(self) -> list[str] | None:
        return self.meta.get("feature_names")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.meta["input_shape"])

    @property
    def columns(self) -> Any:
        """A table model's :class:`~weightsearch.columns.Columns` (it takes raw rows), or
        ``None`` for a model of arrays."""
        from weightsearch.columns import Columns

        record = self.meta.get("columns")
        return None if not record else Columns.from_dict(record)

    def features(self, x: Any) -> Any:
        """``x`` as model input. A table model takes raw rows: a DataFrame (columns picked by
        name; strings, bools, numbers, NaN/None for missing, unseen categories allowed) or,
        when every feature is numeric, an array in training column order. Other models
        take float32 arrays (a DataFrame's columns are picked by name)."""
        from weightsearch.data import DataError, as_float32

        columns = self.columns
        if columns is not None:
            from weightsearch.preprocessing import row_inputs

            frame = self._frame(x, columns)
            try:
                return row_inputs(columns, frame)
            except (ValueError, TypeError) as exc:  # a numeric column holding text
                raise DataError(f"the inputs do not match the training columns: {exc}") from None
        names = None
        if hasattr(x, "columns"):
            names = self.feature_names
            if names is None:
                raise DataError("this model was trained without column names; pass an array.")
            self._check_names(x, names)
            x = x[names].to_numpy(dtype=np.float64)
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise DataError(f"inputs have dtype {arr.dtype}; expected numbers.")
        # never predict from NaN/inf, nor from values the float32 cast turns into inf
        arr = as_float32(arr.astype(np.float64), "the inputs", names)
        if arr.ndim == 1 and self.input_shape == (1,):
            arr = arr[:, None]
        if arr.shape[1:] != self.input_shape:
            raise DataError(
                f"inputs have shape {arr.shape}; expected (N, "
                f"{', '.join(map(str, self.input_shape))}) as in training."
            )
        return arr

    @staticmethod
    def _check_names(x: Any, names: list[str]) -> None:
        from weightsearch.data import DataError

        missing = [n for n in names if n not in x.columns]
        if missing:
            raise DataError(f"the data lacks training feature column(s) {missing}.")

    def _frame(self, x: Any, columns: Any) -> Any:
        """``x`` as a DataFrame of the training columns (an array only when all are numeric)."""
        import pandas as pd

        from weightsearch.data import DataError

        names = columns.names
        if hasattr(x, "columns"):
            self._check_names(x, names)
            return x
        arr = np.asarray(x)
        if arr.ndim == 1 and len(names) == 1:
            arr = arr[:, None]
        if columns.categorical or arr.ndim != 2 or arr.shape[1] != len(names):
            raise DataError(
                f"inputs have shape {arr.shape}; this model takes a DataFrame with the "
                f"training columns {names}" + ("" if columns.categorical else
                                               f", or an array of shape (N, {len(names)})")
                + "."
            )
        return pd.DataFrame(arr, columns=names)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class (softmax) or label (sigmoid) probabilities, ``(N, C)``; ``(0, C)`` for no
        rows."""
        inputs = self.features(x)
        rows = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
        if rows == 0:  # Keras's predict fails on an empty batch
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.asarray(self.model.predict(inputs, batch_size=1024, verbose=0))

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Integer labels ``(N,)`` (or 0/1 ``(N, L)``) by the tuned decision rule: the
        threshold (binary, multi-label) or the class weights on the probabilities
        (multiclass, where export kept them)."""
        from weightsearch.metrics import decide

        thr = self.threshold
        return decide(
            proba, self.task, threshold=0.5 if thr is None else thr,
            positive=1 if self.positive is None else self.positive,
            weights=self.meta.get("decision_weights"),
        )

    def predict(self, x: Any) -> np.ndarray:
        """Class names ``(N,)`` (:attr:`classes_`'s type); multilabel: 0/1 ``(N, L)``."""
        labels = self.decide(self.predict_proba(x))
        if self.task == "multilabel":
            return labels
        return self.classes_[labels]

    def predict_frame(self, x: Any, probabilities: bool = True) -> Any:
        """Predictions as a DataFrame: ``prediction`` (class names; multilabel: one 0/1
        ``pred_<label>`` column per label), then ``proba_<class>`` columns when
        ``probabilities``."""
        import pandas as pd

        proba = self.predict_proba(x)
        labels = self.decide(proba)
        frame: dict[str, Any] = {}
        if self.task == "multilabel":
            for j, c in enumerate(self.classes):
                frame[f"pred_{c}"] = labels[:, j].astype(np.int64)
        else:
            frame["prediction"] = np.asarray(self.classes, dtype=object)[labels]
        if probabilities:
            for j, c in enumerate(self.classes):
                frame[f"proba_{c}"] = proba[:, j].astype(np.float64)
        return pd.DataFrame(frame)


def load_model(directory: str | Path) -> TrainedModel:
    """Reload a model directory written by ``weightsearch train`` (``model.keras`` +
    ``weightsearch.json``)."""
    import keras

    import weightsearch.losses  # noqa: F401  (registers the custom losses)
    import weightsearch.preprocessing  # noqa: F401  (registers TableEncoder)

    d = Path(directory)
    meta_path, model_path = d / META_FILE, d / MODEL_FILE
    if not d.is_dir() or not meta_path.is_file() or not model_path.is_file():
        raise ExportError(
            f"{str(d)!r} is not a weightsearch model directory: expected {MODEL_FILE} and "
            f"{META_FILE} in it (written by `weightsearch train ... --out DIR`)."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{str(meta_path)!r}: cannot read the model metadata: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ExportError(f"{str(meta_path)!r} is not weightsearch model metadata.")
    _import_plugins(meta, d)  # before load_model: a plugin's custom layers must be known
    model = _read_model(model_path, keras)
    return TrainedModel(model=model, meta=meta, path=d)


def _read_model(path: Path, keras: Any) -> Any:
    """``keras.models.load_model``, with a truncated or damaged file named as such (Keras
    says "File not found" for a ``.keras`` file that is not a whole zip archive)."""
    import zipfile

    def corrupt(why: str) -> ExportError:
        return ExportError(
            f"{str(path)!r} is unreadable or corrupt ({why}); expected a model saved by "
            "`weightsearch train` (train it again into a new --out)."
        )

    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise corrupt(f"not a whole .keras zip archive: {exc}") from None
    if damaged is not None:
        raise corrupt(f"the checksum of {damaged!r} in it does not match")
    try:
        return keras.models.load_model(path)
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged file is not our bug
        msg = " ".join(str(exc).split())[:200]
        raise corrupt(f"{type(exc).__name__}: {msg}") from None


def _import_plugins(meta: dict[str, Any], directory: Path) -> None:
    """The training config's ``plugins``, looked up beside the model directory, then on
    ``sys.path``; a failure is one :class:`ExportError` line."""
    from weightsearch.plugins import PluginError, import_plugins, search_dirs

    plugins = (meta.get("config") or {}).get("plugins") or []
    try:
        import_plugins(plugins, search_dirs(directory, directory.parent, Path.cwd()))
    except PluginError as exc:
        raise ExportError(f"{str(directory)!r}: {exc}") from None


@dataclass
class PredictResult:
    """What :func:`predict` wrote: the file, its rows, the predicted count per class."""

    out: Path
    rows: int
    counts: dict[str, int]
    columns: list[str] = field(default_factory=list)


def predict(directory: str | Path, data: str | Path, out: str | Path) -> PredictResult:
    """Predict ``data`` (CSV/Parquet with the training feature columns, or NPZ with array
    ``x``) with a saved model and write ``out`` (CSV): ``prediction`` (class names; for
    multilabel one 0/1 ``pred_<label>`` column per label) and ``proba_<class>`` columns."""

    from weightsearch import data as data_mod

    tm = load_model(directory)
    names = tm.feature_names
    target = tm.meta.get("target")
    targets = [target] if isinstance(target, str) else list(target or data_mod.DEFAULT_TARGETS)
    ignore = [t for t in targets if not names or t not in names]
    if tm.columns is not None and Path(data).suffix.lower() in data_mod.TABLE_SUFFIXES:
        ignore += list(tm.columns.dropped)  # data.drop: ignored in training, so here too
        x: Any = data_mod.load_rows(str(data), feature_names=tm.columns.names, ignore=ignore)
    else:
        x = data_mod.load_features(
            str(data), feature_names=names, input_shape=tm.input_shape, ignore=ignore
        )
    df = tm.predict_frame(x)
    if tm.task == "multilabel":
        counts = {c: int(df[f"pred_{c}"].sum()) for c in tm.classes}
    else:
        counts = {c: int((df["prediction"] == c).sum()) for c in tm.classes}
    out_path = Path(out)
    write_text(out_path, df.to_csv(index=False))
    return PredictResult(out=out_path, rows=len(df), counts=counts, columns=list(df.columns))
