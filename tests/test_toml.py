"""Writing TOML (spec dumps, exported configs) through tomli-w: what is written reads back."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightsearch.spec import dumps_toml

# Any text: quotes, backslashes, newlines and other control characters, unicode.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
KEYS = st.one_of(TEXT, st.sampled_from(["a b", "a.b", 'say "hi"', "back\\slash", "ünï", ""]))
SCALARS = st.one_of(
    TEXT,
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
)
LISTS = st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
    st.lists(st.floats(allow_nan=False), max_size=4),
    st.lists(TEXT, max_size=4),
    st.lists(st.booleans(), max_size=4),
)
TABLES = st.recursive(
    st.dictionaries(KEYS, st.one_of(SCALARS, LISTS), max_size=4),
    lambda inner: st.dictionaries(KEYS, st.one_of(SCALARS, LISTS, inner), max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(TABLES)
def test_what_is_written_reads_back_equal(data: dict) -> None:
    assert tomllib.loads(dumps_toml(data)) == data


@pytest.mark.parametrize("data", [
    {"s": "two\nlines"},
    {"key with space": 1},
    {"dotted.key": "x", "t": {"a.b": {"c d": True}}},
    {"q": 'a "quoted" \\ path', "u": "héllo ✓ \t tab"},
])
def test_the_cases_the_hand_written_writer_got_wrong(data: dict) -> None:
    assert tomllib.loads(dumps_toml(data)) == data


def test_none_in_a_list_is_a_value_error_naming_its_key() -> None:
    with pytest.raises(ValueError, match=r"^data\.options\.weights: TOML has no null"):
        dumps_toml({"data": {"options": {"weights": [0.9, None]}}})


def test_a_none_table_value_is_left_out() -> None:
    assert tomllib.loads(dumps_toml({"a": None, "t": {"b": 1, "c": None}})) == {"t": {"b": 1}}
