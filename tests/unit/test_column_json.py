"""JSON columns are written with orjson where that is the same JSON value as the standard
library's text, and with the standard library everywhere else (NaN, big integers, ...)."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from responder.storage.database import column_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # any size: beyond 64 bits too
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates included
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text() | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def meaning(text: str) -> str:
    """A JSON text in one canonical spelling (NaN compares equal to NaN this way)."""
    return json.dumps(json.loads(text))


@given(values)
def test_the_column_text_means_what_the_standard_library_writes(value: Any) -> None:
    assert meaning(column_json(value)) == meaning(json.dumps(value))


def test_nan_and_infinity_are_never_turned_into_null() -> None:
    decoded = json.loads(column_json({"score": math.nan, "top": math.inf, "none": None}))
    assert math.isnan(decoded["score"]) and decoded["top"] == math.inf and decoded["none"] is None


def test_values_orjson_refuses_are_kept() -> None:
    assert json.loads(column_json({"n": 2**70, "m": -(2**64)})) == {"n": 2**70, "m": -(2**64)}
    assert json.loads(column_json({1: "a"})) == {"1": "a"}
    assert json.loads(column_json(["\ud800"])) == ["\ud800"]


def test_a_str_enum_is_written_as_its_value() -> None:
    class Colour(StrEnum):
        red = "red"

    assert json.loads(column_json({"c": Colour.red})) == {"c": "red"}


def test_plain_values_keep_their_meaning() -> None:
    value = {"source": "edr", "id": "é-1", "n": [1, 2.5, True], "t": "2026-11-25T00:00:00Z"}
    assert json.loads(column_json(value)) == value
