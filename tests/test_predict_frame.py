"""``TrainedModel.predict_frame``: the one answer ``predict``, Python and the MLflow model
give, with the decision rule applied, checked against hand-computed labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from weightsearch.production.predict import TrainedModel


class Fixed:
    """A stand-in model that returns fixed probabilities."""

    def __init__(self, proba: list[list[float]]) -> None:
        self.proba = np.asarray(proba, dtype=np.float32)

    def predict(self, x, batch_size=None, verbose=0):  # noqa: ANN001, ANN201, ARG002
        return self.proba


def model(task: str, classes: list[str], proba: list[list[float]], **meta) -> TrainedModel:
    base = {"task": task, "classes": classes, "input_shape": [2], "feature_names": None}
    return TrainedModel(model=Fixed(proba), meta={**base, **meta}, path=Path("."))


X = np.zeros((3, 2), dtype=np.float32)


def test_binary_applies_the_tuned_threshold_to_the_positive_class() -> None:
    tm = model("binary", ["ok", "fraud"], [[0.7, 0.3], [0.8, 0.2], [0.4, 0.6]],
               threshold=0.25, positive="fraud")
    out = tm.predict_frame(X)
    assert out["prediction"].tolist() == ["fraud", "ok", "fraud"]  # 0.3 ≥ 0.25, 0.2 < 0.25
    assert out.columns.tolist() == ["prediction", "proba_ok", "proba_fraud"]
    assert tm.predict_frame(X, probabilities=False).columns.tolist() == ["prediction"]


def test_multiclass_applies_the_decision_weights() -> None:
    proba = [[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6]]
    plain = model("multiclass", ["a", "b", "c"], proba)
    assert plain.predict_frame(X)["prediction"].tolist() == ["a", "a", "c"]
    # w = (1, 2, 1): 0.5 vs 0.6 → b; 0.4 vs 0.7 → b; 0.6 vs 0.4 → c
    weighted = model("multiclass", ["a", "b", "c"], proba, decision_weights=[1.0, 2.0, 1.0])
    assert weighted.predict_frame(X)["prediction"].tolist() == ["b", "b", "c"]
    assert weighted.predict(X).tolist() == ["b", "b", "c"]


def test_multilabel_gives_one_column_per_label_at_the_threshold() -> None:
    tm = model("multilabel", ["x", "y"], [[0.9, 0.1], [0.35, 0.45], [0.2, 0.8]],
               threshold=[0.3, 0.5])
    out = tm.predict_frame(X, probabilities=False)
    assert out.columns.tolist() == ["pred_x", "pred_y"]
    assert out.to_numpy().tolist() == [[1, 0], [1, 0], [0, 1]]


def test_a_table_model_wants_its_columns_by_name() -> None:
    from weightsearch.columns import Column, Columns
    from weightsearch.data import DataError

    cols = Columns((Column("a", "numeric"), Column("colour", "categorical", ("blue", "red"))))
    tm = model("binary", ["0", "1"], [[0.5, 0.5]] * 3, columns=cols.to_dict())
    with pytest.raises(DataError, match="takes a DataFrame with the training columns"):
        tm.predict_frame(X)
    import pandas as pd

    with pytest.raises(DataError, match=r"lacks training feature column\(s\) \['colour'\]"):
        tm.predict_frame(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    inf = pd.DataFrame({"a": [1.0, 2.0, float("inf")], "colour": ["red", "blue", None]})
    with pytest.raises(DataError, match=r"column 'a' holds inf at data row 3 \(the first data "
                                        r"row is 1\); expected a finite number"):
        tm.predict_frame(inf)
    frame = pd.DataFrame({"a": [1.0, "abc", None], "colour": ["red", "blue", None]})
    with pytest.raises(DataError, match=r"column 'a' is numeric, but data row 2 \(the first "
                                        r"data row is 1\) holds 'abc'; expected a number\.$"):
        tm.predict_frame(frame)


def test_a_frame_without_rows_predicts_nothing() -> None:
    import pandas as pd

    from weightsearch.columns import Column, Columns

    cols = Columns((Column("a", "numeric"), Column("colour", "categorical", ("blue", "red"))))
    tm = model("multiclass", ["x", "y", "z"], [[0.2, 0.3, 0.5]], columns=cols.to_dict())
    empty = pd.DataFrame({"a": pd.Series([], dtype=float), "colour": pd.Series([], dtype=str)})
    assert tm.predict_proba(empty).shape == (0, 3)
    assert tm.predict(empty).tolist() == []
    out = tm.predict_frame(empty)
    assert out.columns.tolist() == ["prediction", "proba_x", "proba_y", "proba_z"]
    assert len(out) == 0
