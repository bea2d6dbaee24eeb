"""weightsearch.metrics against scikit-learn, hand-computed constants and properties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from weightsearch import metrics as M

# ----------------------------------------------------------------------------- strategies


@st.composite
def label_pairs(draw, min_classes: int = 2, max_classes: int = 6):
    """(y_true, y_pred, C) with classes that may be absent from y_true or never predicted."""
    c = draw(st.integers(min_classes, max_classes))
    n = draw(st.integers(1, 40))
    # Labels drawn from a random subset so some classes are missing from one side or both.
    true_pool = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    pred_pool = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c, unique=True))
    t = draw(st.lists(st.sampled_from(true_pool), min_size=n, max_size=n))
    p = draw(st.lists(st.sampled_from(pred_pool), min_size=n, max_size=n))
    return np.array(t, dtype=np.int64), np.array(p, dtype=np.int64), c


@st.composite
def multi_hot_pairs(draw, min_labels: int = 1):
    n = draw(st.integers(1, 30))
    n_labels = draw(st.integers(min_labels, 5))  # L = 1 is compared column-wise (see the test)
    cells = st.lists(st.integers(0, 1), min_size=n * n_labels, max_size=n * n_labels)
    t = np.array(draw(cells), dtype=np.int64).reshape(n, n_labels)
    p = np.array(draw(cells), dtype=np.int64).reshape(n, n_labels)
    return t, p


def sk_f1(t, p, c, average):
    return skm.f1_score(t, p, average=average, labels=list(range(c)), zero_division=0)


# ----------------------------------------------------------------------------- vs sklearn


@settings(max_examples=200, deadline=None)
@given(label_pairs())
def test_macro_f1_equals_sklearn(pair):
    t, p, c = pair
    assert M.macro_f1(t, p, c) == pytest.approx(sk_f1(t, p, c, "macro"), abs=1e-9)
    task = "binary" if c == 2 else "multiclass"
    assert M.score("macro_f1", t, p, task=task, n_classes=c) == pytest.approx(
        sk_f1(t, p, c, "macro"), abs=1e-9
    )
    np.testing.assert_allclose(
        M.per_class_f1(t, p, "multiclass", c), sk_f1(t, p, c, None), rtol=0, atol=1e-12
    )


def _sk_balanced_accuracy(t, p, c, positive):
    """scikit-learn's balanced accuracy; multi-label: its mean over the label columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        if t.ndim == 2:
            return np.mean([skm.balanced_accuracy_score(t[:, j], p[:, j])
                            for j in range(t.shape[1])])
        return skm.balanced_accuracy_score(t, p, adjusted=False)


#: scikit-learn's score for each registered metric (a new metric needs its entry here).
SKLEARN = {
    "macro_f1": lambda t, p, c, positive: sk_f1(t, p, c, "macro"),
    "weighted_f1": lambda t, p, c, positive: sk_f1(t, p, c, "weighted"),
    "balanced_accuracy": _sk_balanced_accuracy,
    "positive_f1": lambda t, p, c, positive: skm.f1_score(
        t, p, pos_label=positive, average="binary", labels=[0, 1], zero_division=0
    ),
}
METRIC_CASES = [(m, task) for m in M.METRICS.names() for task in M.METRICS.get(m).tasks]


@pytest.mark.parametrize(("name", "task"), METRIC_CASES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_metric_equals_sklearn(name, task, data):
    """Every registered metric × task it supports, against scikit-learn's own computation."""
    if task == "multilabel":
        t, p = data.draw(multi_hot_pairs(min_labels=2))  # sklearn reads (N, 1) as binary
        c = t.shape[1]
    else:
        t, p, c = data.draw(label_pairs(2, 2) if task == "binary" else label_pairs(3, 6))
    positive = data.draw(st.integers(0, 1)) if task == "binary" else 1
    got = M.score(name, t, p, task=task, n_classes=c, positive=positive)
    assert got == pytest.approx(SKLEARN[name](t, p, c, positive), abs=1e-9)


@settings(max_examples=120, deadline=None)
@given(multi_hot_pairs())
def test_multilabel_scores_equal_sklearn(pair):
    t, p = pair
    n_labels = t.shape[1]
    # sklearn reads an (N, 1) array as a binary column vector, so score it column-wise there.
    per_label = [
        skm.f1_score(t[:, j], p[:, j], labels=[0, 1], pos_label=1, average="binary",
                     zero_division=0)
        for j in range(n_labels)
    ]
    np.testing.assert_allclose(M.per_class_f1(t, p, "multilabel", n_labels), per_label,
                               rtol=0, atol=1e-12)
    assert M.macro_f1(t, p, n_labels) == pytest.approx(np.mean(per_label), abs=1e-9)
    if n_labels >= 2:
        for average, name in (("macro", "macro_f1"), ("weighted", "weighted_f1")):
            expected = skm.f1_score(t, p, average=average, zero_division=0)
            got = M.score(name, t, p, task="multilabel", n_classes=n_labels)
            assert got == pytest.approx(expected, abs=1e-9)
        np.testing.assert_allclose(
            M.per_class_f1(t, p, "multilabel", n_labels),
            skm.f1_score(t, p, average=None, zero_division=0), rtol=0, atol=1e-12,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_bacc = np.mean([
            skm.balanced_accuracy_score(t[:, j], p[:, j]) for j in range(n_labels)
        ])
    got = M.score("balanced_accuracy", t, p, task="multilabel", n_classes=n_labels)
    assert got == pytest.approx(expected_bacc, abs=1e-9)
    np.testing.assert_array_equal(
        M.multilabel_confusion_matrix(t, p),
        [skm.confusion_matrix(t[:, j], p[:, j], labels=[0, 1]) for j in range(n_labels)],
    )


@settings(max_examples=100, deadline=None)
@given(label_pairs())
def test_confusion_matrix_equals_sklearn(pair):
    t, p, c = pair
    cm = M.confusion_matrix(t, p, c)
    assert cm.dtype == np.int64 and cm.shape == (c, c)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(t, p, labels=list(range(c))))


# ----------------------------------------------------------------------------- hand-computed


def test_absent_class_counts_as_zero():
    # Class 2 is never true and never predicted: F1_2 = 0 pulls the mean down to 2/3.
    t = np.array([0, 0, 1, 1])
    assert M.macro_f1(t, t, 3) == pytest.approx(2 / 3, abs=1e-15)
    np.testing.assert_array_equal(M.per_class_f1(t, t, "multiclass", 3), [1.0, 1.0, 0.0])


def test_averaged_f1_differs_from_f1_of_averages():
    # Opitz & Burst (2019): mean of per-class F1 != F1(mean precision, mean recall).
    # y_true = 8×0, 2×1; y_pred: all 0 except one correctly predicted 1.
    t = np.array([0] * 8 + [1, 1])
    p = np.array([0] * 8 + [1, 0])
    # class 0: TP=8, FP=1, FN=0 → P=8/9, R=1,   F1=16/17
    # class 1: TP=1, FP=0, FN=1 → P=1,   R=1/2, F1=2/3
    f1 = M.per_class_f1(t, p, "binary", 2)
    np.testing.assert_allclose(f1, [16 / 17, 2 / 3], rtol=0, atol=1e-15)
    averaged_f1 = (16 / 17 + 2 / 3) / 2  # = 41/51 ≈ 0.80392
    p_mac, r_mac = (8 / 9 + 1) / 2, (1 + 1 / 2) / 2  # 17/18, 3/4
    f1_of_averages = 2 * p_mac * r_mac / (p_mac + r_mac)  # = 51/61 ≈ 0.83607
    assert M.macro_f1(t, p, 2) == pytest.approx(41 / 51, abs=1e-15)
    assert averaged_f1 == pytest.approx(41 / 51, abs=1e-15)
    assert f1_of_averages == pytest.approx(51 / 61, abs=1e-15)
    assert abs(M.macro_f1(t, p, 2) - f1_of_averages) > 0.03


def test_f1_from_confusion_constants():
    cm = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    # class 0: 2·5/(10+2+1) = 10/13 ; class 1: 6/(6+1+2) = 6/9 ; class 2: 0/0 → 0
    np.testing.assert_allclose(M.f1_from_confusion(cm), [10 / 13, 2 / 3, 0.0], atol=1e-15)
    with pytest.raises(ValueError, match=r"\(C, C\).*got shape \(2, 3\)"):
        M.f1_from_confusion(np.zeros((2, 3)))


def test_balanced_accuracy_constant():
    t = np.array([0, 0, 0, 1, 2])
    p = np.array([0, 1, 1, 1, 0])
    # recalls: 1/3, 1, 0 → mean 4/9 ; class 3 (n_classes=4) absent from y_true is skipped
    assert M.score("balanced_accuracy", t, p, task="multiclass", n_classes=4) == pytest.approx(
        4 / 9, abs=1e-15
    )


def test_multilabel_weighted_f1_with_no_positives_is_zero():
    t = np.zeros((3, 2), dtype=int)
    p = np.array([[1, 0], [0, 0], [0, 1]])
    assert M.score("weighted_f1", t, p, task="multilabel", n_classes=2) == 0.0


# ----------------------------------------------------------------------------- predict_labels


def test_predict_labels_multiclass_argmax():
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    np.testing.assert_array_equal(M.predict_labels(proba, "multiclass"), [1, 0])


def test_predict_labels_binary_threshold_and_positive():
    proba = np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5], [0.9, 0.1]])
    np.testing.assert_array_equal(M.predict_labels(proba, "binary"), [0, 1, 1, 0])
    np.testing.assert_array_equal(M.predict_labels(proba, "binary", 0.25), [1, 1, 1, 0])
    np.testing.assert_array_equal(M.predict_labels(proba, "binary", 0.65), [0, 0, 0, 0])
    # positive = 0: class 0 where proba[:, 0] >= t, else class 1
    np.testing.assert_array_equal(M.predict_labels(proba, "binary", 0.8, positive=0),
                                  [1, 1, 1, 0])
    assert M.predict_labels(proba, "binary").dtype == np.int64


def test_predict_labels_multilabel_scalar_and_per_label():
    proba = np.array([[0.2, 0.6, 0.5], [0.8, 0.1, 0.3]])
    np.testing.assert_array_equal(M.predict_labels(proba, "multilabel"), [[0, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(
        M.predict_labels(proba, "multilabel", [0.1, 0.7, 0.3]), [[1, 0, 1], [1, 0, 1]]
    )


@pytest.mark.parametrize(
    ("task", "threshold", "match"),
    [
        ("binary", 1.5, r"threshold must lie in \[0, 1\], but got 1.5"),
        ("binary", [0.5, 0.5], r"threshold must be a number in \[0, 1\]"),
        ("multilabel", [0.5, 0.5], r"array of 3 per-label thresholds, but got 2"),
        ("multilabel", -0.1, r"threshold must lie in \[0, 1\]"),
    ],
)
def test_predict_labels_rejects_bad_threshold(task, threshold, match):
    c = 2 if task == "binary" else 3
    with pytest.raises(ValueError, match=match):
        M.predict_labels(np.full((2, c), 0.5), task, threshold)


def test_predict_labels_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"2 columns.*got shape \(2, 3\)"):
        M.predict_labels(np.full((2, 3), 0.3), "binary")
    with pytest.raises(ValueError, match="positive must be a class index"):
        M.predict_labels(np.full((2, 2), 0.5), "binary", positive=2)
    with pytest.raises(ValueError, match="task must be one of"):
        M.predict_labels(np.full((2, 2), 0.5), "regression")


# ----------------------------------------------------------------------------- tune_threshold


def test_tune_threshold_binary_known_optimum():
    # Positives have p1 in {0.30, 0.35, 0.40}, negatives {0.10, 0.20, 0.45, 0.60}: any
    # threshold in (0.20, 0.30] separates all but 0.45/0.60 → macro-F1 is best there.
    p1 = np.array([0.30, 0.35, 0.40, 0.10, 0.20, 0.45, 0.60])
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    proba = np.stack([1 - p1, p1], axis=1)
    thr, best = M.tune_threshold(y, proba, task="binary")
    # t in (0.20, 0.30]: class 1 TP=3, FP=2, FN=0 → 6/8 ; class 0 TP=2, FP=0, FN=2 → 4/6
    expected = (6 / 8 + 4 / 6) / 2
    assert best == pytest.approx(expected, abs=1e-12)
    assert thr == pytest.approx(0.30)  # the tie (0.21..0.30) goes to the one closest to 0.5
    brute = max(
        M.macro_f1(y, (p1 >= t).astype(int), 2) for t in np.round(np.arange(5, 96) / 100, 2)
    )
    assert best == pytest.approx(brute, abs=1e-12)


def test_tune_threshold_prefers_half_on_flat_scores():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.99, 0.01], [0.01, 0.99], [0.98, 0.02], [0.02, 0.98]])
    thr, best = M.tune_threshold(y, proba, task="binary")
    assert (thr, best) == (0.5, 1.0)


def test_tune_threshold_multilabel_and_custom_grid():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    proba = np.array([[0.3, 0.1], [0.1, 0.35], [0.32, 0.4], [0.2, 0.05]])
    thr, best = M.tune_threshold(y, proba, task="multilabel", grid=[0.25, 0.5, 0.9])
    assert thr == 0.25 and best == 1.0
    thr, best = M.tune_threshold(y, proba, task="multilabel", grid=[0.5, 0.9])
    assert thr == 0.5 and best == 0.0


def test_tune_threshold_other_metric_and_positive():
    # positive = 0: threshold on proba[:, 0].
    p0 = np.array([0.9, 0.7, 0.35, 0.2, 0.1])
    y = np.array([0, 0, 0, 1, 1])
    proba = np.stack([p0, 1 - p0], axis=1)
    thr, best = M.tune_threshold(y, proba, task="binary", metric="positive_f1", positive=0)
    assert best == 1.0 and 0.2 < thr <= 0.35
    assert thr == pytest.approx(0.35)


def test_tune_threshold_rejects_multiclass_and_bad_grid():
    with pytest.raises(ValueError, match="'binary' or 'multilabel'.*got task 'multiclass'"):
        M.tune_threshold(np.array([0, 1, 2]), np.full((3, 3), 1 / 3), task="multiclass")
    with pytest.raises(ValueError, match=r"grid must be .* in \[0, 1\]"):
        M.tune_threshold(np.array([0, 1]), np.full((2, 2), 0.5), task="binary", grid=[0.5, 2])
    with pytest.raises(ValueError, match="metric 'positive_f1' is defined for binary"):
        M.tune_threshold(np.eye(2, dtype=int), np.full((2, 2), 0.5), task="multilabel",
                         metric="positive_f1")


# ----------------------------------------------------------------------------- validation


def test_registry_names_and_aliases():
    assert set(M.METRICS.names()) == {"macro_f1", "weighted_f1", "balanced_accuracy",
                                      "positive_f1"}
    t, p = np.array([0, 1, 1]), np.array([0, 1, 0])
    assert M.score("F1-Macro", t, p, task="binary", n_classes=2) == M.macro_f1(t, p, 2)
    with pytest.raises(ValueError, match="Unknown metric 'accuracy'; expected one of"):
        M.score("accuracy", t, p, task="binary", n_classes=2)
    with pytest.raises(ValueError, match="'positive_f1' is defined for binary.*'multiclass'"):
        M.score("positive_f1", t, p, task="multiclass", n_classes=3)


def test_input_validation_messages():
    with pytest.raises(ValueError, match=r"y_pred must hold class labels in 0..2 .*\[3\]"):
        M.macro_f1([0, 1, 2], [0, 1, 3], 3)
    with pytest.raises(ValueError, match=r"same shape, but got \(3,\) and \(2,\)"):
        M.macro_f1([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match="integer labels, but got non-integer"):
        M.macro_f1([0.5, 1.0], [0, 1], 2)
    with pytest.raises(ValueError, match="n_classes must be 2 for task 'binary', but got 3"):
        M.score("macro_f1", [0, 1], [0, 1], task="binary", n_classes=3)
    with pytest.raises(ValueError, match=r"only 0 and 1 \(multi-hot\)"):
        M.macro_f1(np.array([[0, 2]]), np.array([[0, 1]]), 2)
    with pytest.raises(ValueError, match="y_true is empty"):
        M.macro_f1([], [], 2)
