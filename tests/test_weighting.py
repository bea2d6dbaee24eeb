"""Tests for weightsearch.weighting: common properties of every scheme, then per-scheme values."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight

from weightsearch._params import Param
from weightsearch.weighting import (
    WEIGHTINGS,
    Scheme,
    class_weights,
    multilabel_weights,
    scheme_params,
    weight_vector,
)

SCHEMES = WEIGHTINGS.names()
# Schemes whose weights depend on the total n as well as on n_c (so duplicating the class
# set, which doubles n, legitimately changes them). A new scheme is assumed not to.
DEPENDS_ON_TOTAL = {"log"}

counts_st = st.lists(st.integers(1, 10**6), min_size=2, max_size=12).map(
    lambda c: np.array(c, dtype=np.float64)
)


def _param_value(param: Param) -> st.SearchStrategy:
    """Any valid value of a numeric Param."""
    return st.floats(
        min_value=param.low, max_value=param.high,
        exclude_min=param.low_open and param.low is not None,
        exclude_max=param.high_open and param.high is not None,
        allow_nan=False, allow_infinity=False,
    )


@st.composite
def counts_and_params(draw: st.DrawFn, name: str) -> tuple[np.ndarray, dict[str, float]]:
    params = {k: draw(_param_value(p)) for k, p in WEIGHTINGS.get(name).params.items()}
    return draw(counts_st), params


# --------------------------------------------------------------------------- common tests


def test_imports_numpy_only() -> None:
    code = ("import sys, weightsearch.weighting; "
            "assert not {'keras', 'tensorflow'} & set(sys.modules), 'keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_has_the_documented_schemes() -> None:
    assert set(SCHEMES) == {
        "none", "balanced", "sqrt", "log", "squared", "effective_number", "power",
    }
    assert WEIGHTINGS.canonical("Inverse") == "balanced"
    assert WEIGHTINGS.canonical("Effective-Number") == "effective_number"


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_is_documented_and_defaults_are_valid(name: str) -> None:
    spec = WEIGHTINGS.get(name)
    assert isinstance(spec, Scheme) and spec.name == name
    assert "w_c" in spec.doc  # the formula
    for pname, param in spec.params.items():
        assert param.check(param.default, pname) == param.default
        assert pname in spec.doc
    assert scheme_params(name) == spec.params


@pytest.mark.parametrize("name", SCHEMES)
def test_normalisation_positive_and_monotone(name: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(counts_and_params(name))
    def check(case: tuple[np.ndarray, dict[str, float]]) -> None:
        counts, params = case
        w = weight_vector(counts, name, **params)
        assert w.dtype == np.float64 and w.shape == counts.shape
        assert np.all(np.isfinite(w)) and np.all(w > 0)
        np.testing.assert_allclose(np.dot(counts, w), counts.sum(), rtol=1e-9)
        # a rarer class never gets a smaller weight
        order = np.argsort(counts, kind="stable")
        sorted_counts, sorted_w = counts[order], w[order]
        for i in range(len(counts) - 1):
            if sorted_counts[i] < sorted_counts[i + 1]:
                assert sorted_w[i] >= sorted_w[i + 1]
            else:
                assert sorted_w[i] == sorted_w[i + 1]

    check()


@pytest.mark.parametrize("name", SCHEMES)
def test_duplicated_and_permuted_class_sets(name: str) -> None:
    @settings(max_examples=30, deadline=None)
    @given(counts_and_params(name), st.randoms(use_true_random=False))
    def check(case: tuple[np.ndarray, dict[str, float]], rnd) -> None:
        counts, params = case
        w = weight_vector(counts, name, **params)
        perm = np.array(rnd.sample(range(len(counts)), len(counts)))
        np.testing.assert_allclose(weight_vector(counts[perm], name, **params), w[perm],
                                   rtol=1e-12)
        doubled = np.concatenate([counts, counts])
        wd = weight_vector(doubled, name, **params)
        np.testing.assert_allclose(wd[: len(counts)], wd[len(counts):], rtol=1e-12)
        np.testing.assert_allclose(np.dot(doubled, wd), doubled.sum(), rtol=1e-9)
        if name not in DEPENDS_ON_TOTAL:
            np.testing.assert_allclose(wd, np.tile(w, 2), rtol=1e-9)

    check()


def _bad_values(param: Param) -> list[float]:
    bad = []
    if param.low is not None:
        bad.append(param.low if param.low_open else param.low - 1.0)
    if param.high is not None:
        bad.append(param.high if param.high_open else param.high + 1.0)
    return bad


@pytest.mark.parametrize("name", SCHEMES)
def test_bad_parameter_is_a_clear_error(name: str) -> None:
    spec = WEIGHTINGS.get(name)
    for pname, param in spec.params.items():
        assert _bad_values(param), f"{name}.{pname} has no bounds to test"
        for value in [*_bad_values(param), "0.5", None]:
            with pytest.raises(ValueError) as info:
                weight_vector([90, 10], name, **{pname: value})
            msg = str(info.value)
            assert name in msg and pname in msg and param.describe() in msg
            assert repr(value) in msg
    with pytest.raises(ValueError, match=rf"{name}.*unknown parameter.*'gamma'"):
        weight_vector([90, 10], name, gamma=2.0)


@pytest.mark.parametrize("name", SCHEMES)
def test_class_weights_match_weight_vector(name: str) -> None:
    y = np.array([0] * 7 + [1] * 2 + [2] * 3)
    cw = class_weights(y, name)
    assert list(cw) == [0, 1, 2] and all(isinstance(v, float) for v in cw.values())
    np.testing.assert_array_equal(list(cw.values()), weight_vector([7, 2, 3], name))


# --------------------------------------------------------------------------- constants


COUNTS = np.array([90.0, 10.0])


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("none", {}, [1.0, 1.0]),
        ("balanced", {}, [100 / 180, 5.0]),  # n / (C n_c)
        ("inverse", {}, [100 / 180, 5.0]),
        ("sqrt", {}, [5 / 6, 2.5]),  # k = 100/(√90+√10) = 25/√10
        ("squared", {}, [1 / 9, 9.0]),  # Σ n_c/n_c² = 1/9, k = 900
        ("log", {}, [1.0, 1.0]),  # ln(0.15·100/10) = ln 1.5 < 1: no-op
        # μ = 1: raw [1, ln 10], k = 100 / (90 + 10 ln 10)
        ("log", {"mu": 1.0}, np.array([1.0, math.log(10)]) * 100 / (90 + 10 * math.log(10))),
        ("power", {"p": 1.0}, [100 / 180, 5.0]),
        ("power", {"p": 0.0}, [1.0, 1.0]),
    ],
)
def test_hand_computed_constants(name: str, params: dict, expected: list[float]) -> None:
    np.testing.assert_allclose(weight_vector(COUNTS, name, **params), expected, rtol=1e-12)


def test_balanced_rounded_values() -> None:
    np.testing.assert_allclose(weight_vector(COUNTS), [0.5556, 5.0], atol=5e-5)


def test_effective_number_hand_computed() -> None:
    beta = 0.9
    raw = [(1 - beta) / (1 - beta**90), (1 - beta) / (1 - beta**10)]  # 0.1/(1-0.9^n)
    k = 100 / (90 * raw[0] + 10 * raw[1])
    np.testing.assert_allclose(weight_vector(COUNTS, "effective_number", beta=beta),
                               [k * raw[0], k * raw[1]], rtol=1e-12)
    # 0.9^10 = 0.3486784401, so w1/w0 = (1 - 0.9^90)/(1 - 0.9^10) ≈ 1.53526
    w = weight_vector(COUNTS, "effective_number", beta=beta)
    assert w[1] / w[0] == pytest.approx((1 - 0.9**90) / (1 - 0.3486784401), rel=1e-12)


def test_effective_number_limits() -> None:
    counts = np.array([900.0, 90.0, 10.0])
    np.testing.assert_allclose(weight_vector(counts, "effective_number", beta=1e-12),
                               weight_vector(counts, "none"), rtol=1e-9)
    np.testing.assert_allclose(weight_vector(counts, "effective_number", beta=1 - 1e-12),
                               weight_vector(counts, "balanced"), rtol=1e-6)
    # and it sits in between for the default β
    w = weight_vector(counts, "effective_number")
    assert 1 < w[2] / w[0] < 90


def test_log_scheme_is_often_a_no_op() -> None:
    assert "5.5" in WEIGHTINGS.get("log").doc
    # classes above μ/e = 5.52 % of the data keep weight 1 (before normalisation)
    np.testing.assert_array_equal(weight_vector([94, 6], "log"), [1.0, 1.0])
    w = weight_vector([95, 5], "log")  # 5 % < 5.52 %: ln(0.15·100/5) = ln 3 > 1
    assert w[1] / w[0] == pytest.approx(math.log(3), rel=1e-12)
    np.testing.assert_allclose(weight_vector([990, 10], "log"),
                               np.array([1.0, math.log(15)]) * 1000 / (990 + 10 * math.log(15)),
                               rtol=1e-12)


@pytest.mark.parametrize(("p", "same_as"), [(0, "none"), (0.5, "sqrt"), (1, "balanced"),
                                            (2, "squared")])
def test_power_interpolates_the_named_schemes(p: float, same_as: str) -> None:
    counts = np.array([500.0, 120.0, 7.0, 1.0])
    np.testing.assert_allclose(weight_vector(counts, "power", p=p), weight_vector(counts, same_as),
                               rtol=1e-12)


def test_inverse_is_identical_to_balanced() -> None:
    y = np.random.default_rng(0).integers(0, 4, size=200)
    assert class_weights(y, "inverse") == class_weights(y, "balanced")
    assert WEIGHTINGS.get("inverse") is WEIGHTINGS.get("balanced")


@pytest.mark.parametrize("seed", range(5))
def test_balanced_equals_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 8))
    probs = rng.dirichlet(np.ones(n_classes))
    y = np.concatenate([np.arange(n_classes), rng.choice(n_classes, size=300, p=probs)])
    expected = compute_class_weight("balanced", classes=np.arange(n_classes), y=y)
    np.testing.assert_allclose(list(class_weights(y).values()), expected, rtol=1e-12)


# --------------------------------------------------------------------------- label checks


def test_absent_class_is_named() -> None:
    with pytest.raises(ValueError, match=r"class 1 .*does not occur in y"):
        class_weights([0, 0, 2, 2])
    with pytest.raises(ValueError, match=r"class 3 .*n_classes=4"):
        class_weights([0, 1, 2], n_classes=4)


@pytest.mark.parametrize(
    ("y", "kwargs", "match"),
    [
        ([0, -1, 1], {}, "negative label -1"),
        ([0.0, 0.5, 1.0], {}, "non-integer label 0.5"),
        (["a", "b"], {}, "dtype"),
        ([[0, 1]], {}, r"1-D.*shape \(1, 2\)"),
        ([], {}, "non-empty"),
        ([0, 1, 3], {"n_classes": 3}, r"0\.\.2 .*label 3"),
        ([0, 1], {"n_classes": 1}, "n_classes must be an integer >= 2"),
    ],
)
def test_bad_labels(y, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        class_weights(y, **kwargs)


def test_integral_float_labels_are_accepted() -> None:
    assert class_weights(np.array([0.0, 1.0, 1.0, 1.0])) == {0: 2.0, 1: 2 / 3}


@pytest.mark.parametrize("counts", [[10, 0], [-1, 5], [np.nan, 3], [], [[1, 2]]])
def test_bad_counts(counts) -> None:
    with pytest.raises(ValueError, match="counts"):
        weight_vector(counts)


def test_unknown_scheme_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"Unknown weighting scheme 'cubic'.*balanced"):
        weight_vector([1, 2], "cubic")


# --------------------------------------------------------------------------- multi-label


def test_multilabel_weights_per_label() -> None:
    Y = np.zeros((8, 3), dtype=np.int64)
    Y[:2, 0] = 1  # label 0: 2 positives of 8
    Y[:6, 1] = 1  # label 1: 6 positives
    Y[:4, 2] = 1  # label 2: balanced
    W = multilabel_weights(Y)
    assert W.dtype == np.float64 and W.shape == (3, 2)
    np.testing.assert_allclose(W, [[8 / 12, 8 / 4], [8 / 4, 8 / 12], [1.0, 1.0]], rtol=1e-12)
    n1 = Y.sum(axis=0)
    np.testing.assert_allclose((8 - n1) * W[:, 0] + n1 * W[:, 1], 8.0, rtol=1e-12)


@pytest.mark.parametrize("name", SCHEMES)
def test_multilabel_weights_normalised_for_every_scheme(name: str) -> None:
    Y = (np.random.default_rng(1).random((200, 4)) < [0.02, 0.1, 0.5, 0.9]).astype(int)
    W = multilabel_weights(Y, name)
    n1 = Y.sum(axis=0)
    np.testing.assert_allclose((200 - n1) * W[:, 0] + n1 * W[:, 1], 200.0, rtol=1e-12)
    for label in range(4):
        np.testing.assert_array_equal(W[label], weight_vector([200 - n1[label], n1[label]], name))


def test_multilabel_label_without_positives_or_negatives_is_named() -> None:
    Y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]])
    with pytest.raises(ValueError, match=r"label 1 of Y has no positives"):
        multilabel_weights(Y)
    with pytest.raises(ValueError, match=r"label 1 of Y has no negatives"):
        multilabel_weights(np.array([[1, 1], [0, 1]]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        multilabel_weights(np.array([[2, 1], [0, 1]]))
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        multilabel_weights(np.array([1, 0]))
