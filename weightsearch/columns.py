"""How each column of a table reaches the model: the :class:`Columns` schema.

A table's features become one float32 *code matrix* ``(N, F)``, column for column:

- a **numeric** column holds its value, ``NaN`` where it is missing;
- a **categorical** column holds the index ``i`` of its value in ``levels`` (sorted level
  texts, :func:`level_text`), ``NaN`` where it is missing.

The model's first layer (:class:`weightsearch.preprocessing.TableEncoder`, fitted on the
training fold) imputes, flags and one-hot encodes (or embeds) those codes; the served model
puts a ``StringLookup`` in front, so it takes the raw values. This module holds no Keras: it
is the schema and the raw-value → code rule, said once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from weightsearch.base import CATEGORICAL_AUTO, MISSING_MODES

__all__ = [
    "CATEGORICAL_AUTO",
    "EMBED_ABOVE",
    "MISSING_MODES",
    "Column",
    "Columns",
    "embedding_dim",
    "level_text",
]

#: A categorical with more levels than this is embedded rather than one-hot encoded.
EMBED_ABOVE = 16


def embedding_dim(levels: int) -> int:
    """d = min(16, round(1.6 · (n + 1)^0.56)): the fastai rule of thumb for n levels + OOV."""
    return int(min(16, round(1.6 * (levels + 1) ** 0.56)))


def level_text(value: Any) -> str | None:
    """The text of one categorical value, as training and serving both see it; ``None`` for
    missing. ``True`` → ``"True"``, ``2.0`` → ``"2"``, ``"a"`` → ``"a"``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "True" if value else "False"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value)
    return None if text == "" else text


def texts(values: Sequence[Any] | np.ndarray | pd.Series) -> list[str | None]:
    """:func:`level_text` of each value."""
    return [level_text(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


@dataclass(frozen=True)
class Column:
    """One feature column: ``kind`` is ``"numeric"`` or ``"categorical"``; ``levels`` (sorted
    texts) for a categorical; ``missing`` counts its holes in the data it was read from;
    ``dtype`` is the pandas dtype it had there (for the served model's signature)."""

    name: str
    kind: str
    levels: tuple[str, ...] = ()
    missing: int = 0
    dtype: str = "float64"

    @property
    def embedded(self) -> bool:
        """Whether this categorical is embedded (more than :data:`EMBED_ABOVE` levels)."""
        return self.kind == "categorical" and len(self.levels) > EMBED_ABOVE

    @property
    def value_type(self) -> str:
        """The type of this column's raw values, as a served model's signature declares it:
        ``boolean`` (a bool column), ``double`` (every numeric feature, integers too: a hole
        is imputed, and MLflow refuses NaN in a ``long`` column; its check in turn refuses an
        int64 frame column for ``double``, so Python callers send floats, while REST input is
        parsed by the signature), ``long`` (integer codes of a categorical, complete in the
        data) or ``string``."""
        if self.dtype == "bool":
            return "boolean"
        if self.kind == "numeric" or self.dtype.startswith("float"):
            return "double"
        if self.dtype.startswith(("int", "uint")):
            return "long"
        return "string"

    def describe(self) -> str:
        """``numeric``, ``categorical, 3 levels (one-hot)`` …, with the missing count."""
        if self.kind == "numeric":
            text = "numeric"
        else:
            how = f"embedded in {embedding_dim(len(self.levels))}" if self.embedded else "one-hot"
            text = f"categorical, {len(self.levels)} levels ({how})"
        return text + (f", {self.missing} missing" if self.missing else "")

    def codes(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """This column's float64 codes for raw ``values`` (see the module docstring); a
        categorical value outside ``levels`` is ``-1`` (the OOV bucket, as missing is)."""
        if self.kind == "numeric":
            series = pd.Series(values).reset_index(drop=True)
            numbers = pd.to_numeric(series, errors="coerce")
            bad = np.flatnonzero((numbers.isna() & ~series.isna()).to_numpy())
            if len(bad):
                raise ValueError(
                    f"column {self.name!r} is numeric, but data row {int(bad[0]) + 1} (the "
                    f"first data row is 1) holds {series.iloc[bad[0]]!r}; expected a number."
                )
            return numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        index = {lv: i for i, lv in enumerate(self.levels)}
        out = np.empty(len(values), dtype=np.float64)
        for r, t in enumerate(texts(values)):
            out[r] = np.nan if t is None else index.get(t, -1)
        return out

    def values(self, codes: np.ndarray) -> pd.Series:
        """Raw values back from codes (the inverse of :meth:`codes`): numbers, or a
        categorical's levels in the column's own type (bool, int, float or text); missing
        and unknown codes give ``None``/NaN."""
        codes = np.asarray(codes, dtype=np.float64)
        if self.kind == "numeric":
            series = pd.Series(codes, name=self.name)
            if self.dtype.startswith(("int", "uint")) and not series.isna().any():
                series = series.astype(self.dtype)
            return series
        cast: Any = str
        if self.dtype == "bool":
            cast = {"True": True, "False": False}.get
        elif self.dtype.startswith(("int", "uint")):
            cast = int
        elif self.dtype.startswith("float"):
            cast = float
        out = [None if math.isnan(c) or c < 0 else cast(self.levels[int(c)]) for c in codes]
        series = pd.Series(out, name=self.name, dtype=object)
        if not series.isna().any() and self.dtype in ("bool", "int64", "float64"):
            series = series.astype(self.dtype)
        return series

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype,
                             "missing": int(self.missing)}
        if self.kind == "categorical":
            d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Column:
        return cls(
            name=str(d["name"]), kind=str(d["kind"]),
            levels=tuple(str(v) for v in d.get("levels", ())),
            missing=int(d.get("missing", 0)), dtype=str(d.get("dtype", "float64")),
        )


@dataclass(frozen=True)
class Columns:
    """The treatment of every column of a table: the features in order, and the dropped."""

    features: tuple[Column, ...]
    dropped: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.features]

    @property
    def numeric(self) -> list[int]:
        """Positions of the numeric features."""
        return [i for i, c in enumerate(self.features) if c.kind == "numeric"]

    @property
    def categorical(self) -> list[int]:
        """Positions of the categorical features."""
        return [i for i, c in enumerate(self.features) if c.kind == "categorical"]

    @property
    def plain(self) -> bool:
        """True when every feature is numeric and complete: the code matrix is the data."""
        return not self.categorical and not any(c.missing for c in self.features)

    def codes(self, frame: pd.DataFrame) -> np.ndarray:
        """The float32 code matrix ``(N, F)`` of ``frame``'s feature columns (by name)."""
        if not self.features:
            return np.zeros((len(frame), 0), dtype=np.float32)
        cols = [c.codes(frame[c.name]) for c in self.features]
        with np.errstate(over="ignore"):
            return np.stack(cols, axis=1).astype(np.float32)

    def rows(self, codes: np.ndarray) -> pd.DataFrame:
        """The raw rows of a code matrix ``(N, F)`` (:meth:`Column.values` per column)."""
        codes = np.asarray(codes)
        return pd.DataFrame({c.name: c.values(codes[:, i]) for i, c in enumerate(self.features)})

    def served_rows(self, codes: np.ndarray) -> pd.DataFrame:
        """:meth:`rows` in the served signature's types (:attr:`Column.value_type`): every
        ``double`` column as float64, so an input example passes MLflow's check."""
        frame = self.rows(codes)
        return frame.astype({c.name: "float64" for c in self.features
                             if c.value_type == "double"})

    def describe(self) -> list[tuple[str, str]]:
        """``(column, treatment)`` for every feature, then every dropped column."""
        return [(c.name, c.describe()) for c in self.features] + [
            (name, "dropped") for name in self.dropped
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"features": [c.to_dict() for c in self.features], "dropped": list(self.dropped)}

    def record(self) -> dict[str, dict[str, Any]]:
        """``{column: {"kind", "levels", "encoding", "missing"}}`` for every feature: the
        treatment a training config records (``levels``/``encoding`` for categoricals)."""
        out: dict[str, dict[str, Any]] = {}
        for c in self.features:
            row: dict[str, Any] = {"kind": c.kind}
            if c.kind == "categorical":
                row["levels"] = len(c.levels)
                row["encoding"] = "embedding" if c.embedded else "one-hot"
            row["missing"] = int(c.missing)
            out[c.name] = row
        return out

    def kind_changes(self, record: dict[str, dict[str, Any]]) -> list[str]:
        """``"column: numeric, expected categorical"`` for each feature whose kind differs
        from ``record`` (:meth:`record`); columns are matched by name."""
        kinds = {c.name: c.kind for c in self.features}
        return [f"{name!r} is {kinds[name]}, expected {row.get('kind')}"
                for name, row in record.items()
                if name in kinds and kinds[name] != row.get("kind")]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Columns:
        return cls(
            features=tuple(Column.from_dict(c) for c in d.get("features", ())),
            dropped=tuple(str(n) for n in d.get("dropped", ())),
        )
