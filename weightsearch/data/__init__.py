"""Data layer: built-in datasets, CSV/Parquet/NPZ loading, validation and stratified splits.

Imports only numpy, pandas and scikit-learn (plus ``iterstrat`` lazily for multi-label
splits), so it is cheap to import and never touches Keras, Optuna or MLflow.

- :mod:`~weightsearch.data.dataset`: :class:`Dataset`, :class:`DataError` and shared checks;
- :mod:`~weightsearch.data.labels`: label encoding, task detection, model targets;
- :mod:`~weightsearch.data.builtins`: the ``"builtin:<name>"`` registry and generators;
- :mod:`~weightsearch.data.files`: :func:`load` and :func:`load_features` (CSV/Parquet/NPZ);
- :mod:`~weightsearch.data.splits`: train/test split, k-fold, :func:`check_folds`.
"""

from weightsearch.data.builtins import BUILTIN_PREFIX, BUILTINS, list_datasets
from weightsearch.data.dataset import DataError, Dataset
from weightsearch.data.files import (
    DEFAULT_TARGETS,
    SUFFIXES,
    TABLE_SUFFIXES,
    as_float32,
    from_arrays,
    from_frame,
    load,
    load_features,
    load_rows,
)
from weightsearch.data.labels import encode_labels, model_targets
from weightsearch.data.splits import check_folds, kfold, train_test_split

__all__ = [
    "BUILTINS",
    "BUILTIN_PREFIX",
    "DEFAULT_TARGETS",
    "SUFFIXES",
    "TABLE_SUFFIXES",
    "DataError",
    "Dataset",
    "as_float32",
    "check_folds",
    "encode_labels",
    "from_arrays",
    "from_frame",
    "kfold",
    "list_datasets",
    "load",
    "load_features",
    "load_rows",
    "model_targets",
    "train_test_split",
]
