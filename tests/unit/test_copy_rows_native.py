"""COPY rows formatted by the compiled path (`responder_native.copy_rows`, used by
`storage.bulk.insert_rows`) against the driver's own formatter fed as `insert_rows` feeds it.

Every column the compiled path writes must be the driver's bytes (JSON columns: the text
`column_json` gives); a row holding anything it does not take makes it answer None (the
driver writes them all).
"""

from __future__ import annotations

import enum
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import TextFormatter  # the driver's COPY text writer (psycopg 3, locked)
from psycopg.adapt import Transformer

from responder.storage.database import column_json

responder_native = pytest.importorskip("responder_native", exc_type=ImportError)

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)
NAMES = ["text", "number", "flag", "ratio", "at", "body", "maybe"]
JSON = [False, False, False, False, False, True, True]

text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00")
    | st.sampled_from('\x01\x08\x0c\x1f\x7f\u2028"\\\n\r\t/é😀')
)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=5),
    max_leaves=25,
)
times = (
    st.sampled_from(
        [
            T0,
            T0 + timedelta(microseconds=1),
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            datetime(2026, 1, 2, 3, 4, 5),  # naive
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ]
    )
    # UTC ones are written from their fields, the others by str()
    | st.datetimes(timezones=st.just(UTC))
    | st.datetimes(timezones=st.just(ZoneInfo("UTC")))  # UTC, not the singleton
    | st.datetimes(timezones=st.just(timezone(timedelta(0), "UTC")))  # not the UTC singleton
    | st.datetimes(timezones=st.just(timezone(timedelta(hours=5, minutes=45))))
)
row = st.fixed_dictionaries(
    {
        "text": text | st.none(),
        "number": st.integers(-(2**63), 2**63 - 1) | st.none(),
        "flag": st.booleans() | st.none(),
        "ratio": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
        "at": times | st.none(),
        "body": plain,
        "maybe": st.none() | plain,
    }
)


def driver_fields(values: dict[str, Any]) -> list[bytes]:
    """Each column as the driver writes it in COPY's text format (`insert_rows`' fallback)."""
    formatter = TextFormatter(Transformer())
    adapted = [column_json(values[n]) if j else values[n] for n, j in zip(NAMES, JSON, strict=True)]
    line = bytes(formatter.write_row(adapted)) + bytes(formatter.end())
    return line.removesuffix(b"\n").split(b"\t")


@settings(max_examples=300)
@given(st.lists(row, min_size=1, max_size=8))
@example([dict.fromkeys(NAMES, None)])  # NULLs, and JSON's null in JSON columns
@example([{**dict.fromkeys(NAMES, None), "body": {"big": 2**64 - 1, "f": [1e16, 1e-7, -0.0]}}])
def test_rows_are_the_drivers_bytes(rows: list[dict[str, Any]]) -> None:
    encoded = responder_native.copy_rows(rows, NAMES, JSON)
    assert encoded is not None
    lines = encoded.split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == len(rows)
    for line, values in zip(lines, rows, strict=True):
        assert line.split(b"\t") == driver_fields(values)


class Colour(enum.StrEnum):
    red = "red"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("text", "nul\x00"),  # PostgreSQL refuses it: the driver's error, as before
        ("text", "\ud800"),
        ("text", Colour.red),
        ("number", 2**63),
        ("ratio", math.nan),
        ("ratio", math.inf),
        ("ratio", Decimal("1.5")),
        ("at", date(2026, 1, 1)),
        ("body", {"t": (1, 2)}),
        ("body", {"big": 2**64}),  # orjson refuses it: column_json writes json's own text
        ("body", {"nan": math.nan}),
        ("body", {1: "int key"}),
        ("body", {"when": T0}),
        ("maybe", ["\udc00"]),
    ],
)
def test_a_value_it_does_not_take_leaves_the_rows_to_the_driver(name: str, value: Any) -> None:
    fine: dict[str, Any] = {**dict.fromkeys(NAMES, None), "text": "x", "body": {}}
    assert responder_native.copy_rows([fine], NAMES, JSON) is not None
    assert responder_native.copy_rows([fine, {**fine, name: value}], NAMES, JSON) is None


def test_rows_that_are_not_dicts_holding_every_column_are_refused() -> None:
    fine: dict[str, Any] = {**dict.fromkeys(NAMES, None), "body": {}}
    missing = {n: v for n, v in fine.items() if n != "at"}
    assert responder_native.copy_rows([fine, missing], NAMES, JSON) is None
    assert responder_native.copy_rows([fine, list(fine.values())], NAMES, JSON) is None
    with pytest.raises(ValueError, match="one json flag per column"):
        responder_native.copy_rows([fine], NAMES, JSON[:-1])
