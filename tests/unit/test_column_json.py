"""JSON columns are written with orjson where that is the same JSON value as the standard
library's text, and with the standard library everywhere else (NaN, big integers, ...)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from responder.storage.database import column_json, column_loads


class Colour(StrEnum):
    red = "red"


@dataclass
class Point:
    x: int


# where orjson and the standard library part ways, drawn often (a plain float or integer
# strategy hardly ever draws them in the suite's 100 derandomized examples)
EDGES = [math.nan, math.inf, -math.inf, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, "\ud800", "null"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # any size: beyond 64 bits too
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()  # lone surrogates included
    | st.sampled_from(EDGES)
    | st.sampled_from(Colour)  # a str subclass
    | st.datetimes(timezones=st.just(UTC))  # refused by the standard library
    | st.builds(Point, st.integers())  # likewise
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers() | st.sampled_from(EDGES[:3]), inner, max_size=4)
    ),
    max_leaves=20,
)


def meaning(dumps: Callable[[Any], str], value: Any) -> str | None:
    """What `dumps` writes for `value` in one canonical spelling (NaN compares equal to NaN
    this way); None when it refuses the value."""
    try:
        text = dumps(value)
    except (TypeError, ValueError):
        return None
    return json.dumps(json.loads(text))


@given(values)
@example(math.nan)
@example({"score": [1.5, math.inf]})
@example([2**64, -(2**63) - 1])
@example({1: "a", math.nan: "b"})
@example(["\ud800"])
@example(datetime(2026, 11, 25, tzinfo=UTC))
@example(Point(1))
def test_the_column_text_means_what_the_standard_library_writes(value: Any) -> None:
    """Every value: the same JSON value as `json.dumps`, or refused as `json.dumps` refuses it."""
    assert meaning(column_json, value) == meaning(json.dumps, value)


def test_nan_and_infinity_are_never_turned_into_null() -> None:
    decoded = json.loads(column_json({"score": math.nan, "top": math.inf, "none": None}))
    assert math.isnan(decoded["score"]) and decoded["top"] == math.inf and decoded["none"] is None


def test_values_orjson_refuses_are_kept() -> None:
    assert json.loads(column_json({"n": 2**70, "m": -(2**64)})) == {"n": 2**70, "m": -(2**64)}
    assert json.loads(column_json({1: "a"})) == {"1": "a"}
    assert json.loads(column_json(["\ud800"])) == ["\ud800"]


def test_a_str_enum_is_written_as_its_value() -> None:
    assert json.loads(column_json({"c": Colour.red})) == {"c": "red"}


def test_plain_values_keep_their_meaning() -> None:
    value = {"source": "edr", "id": "é-1", "n": [1, 2.5, True], "t": "2026-11-25T00:00:00Z"}
    assert json.loads(column_json(value)) == value


def test_a_plain_value_holding_null_is_written_without_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`null` read back equal to the value proves no NaN became it: orjson's text is kept (the
    sink's rows hold nulls; the standard library's writer cost 10% of its CPU)."""

    def refused(*_: Any, **__: Any) -> str:
        raise AssertionError("the standard library's writer was used")

    monkeypatch.setattr("responder.storage.database.json.dumps", refused)
    value = {"reportable": None, "events": [{"id": "e", "cvss": 9.8, "name": None}], "n": 2}
    assert json.loads(column_json(value)) == value
    with pytest.raises(AssertionError):
        column_json({"score": math.nan, "none": None})
    with pytest.raises(AssertionError):
        column_json({"pair": (1, None)})


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 and 1.0 differ; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


# texts the standard library reads and orjson refuses or reads otherwise, and near misses
TEXTS = [
    "[NaN]", "Infinity", "-Infinity", '"\\ud800"', "1e400", "-1e400", "123456789012345678901",
    "-9223372036854775809", "18446744073709551615", "9223372036854775807", '{"a":1,"a":2}',
    '"1234567890123456789"', "0.1", "-0.0", "1E5", "2.5e-324", '"\\u0000"', " [1] ",
]  # fmt: skip
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(plain.map(json.dumps) | plain.map(column_json) | st.sampled_from(TEXTS))
@example('{"n": 123456789012345678901234567890, "f": 1.5}')
@example('["\\ud800", NaN]')
def test_a_column_read_back_is_what_the_standard_library_reads(text: str) -> None:
    expected = json.loads(text)
    assert same(column_loads(text), expected)
    assert same(column_loads(text.encode()), expected)  # as the PostgreSQL driver hands it


def test_a_text_with_a_lone_surrogate_itself_is_read_by_the_standard_library() -> None:
    assert column_loads('["\ud800"]') == ["\ud800"]
