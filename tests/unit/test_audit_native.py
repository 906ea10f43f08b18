"""The audit chain's compiled path (`audit.native`) against the Python reference (`chain.link`).

The compiled path must hash exactly what `chain.canonical` hashes, and write the rows COPY
reads back as the values the Python path would store; whatever it does not take (data that is
not plain JSON, a NUL in a text column) it must refuse whole, so Python appends the batch.
"""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import TextFormatter  # the driver's COPY text writer (psycopg 3, locked)
from psycopg.adapt import Transformer

from responder.audit import native
from responder.audit.chain import GENESIS, ChainKey, Entry, link
from responder.storage.database import column_json

pytest.importorskip("responder_native", exc_type=ImportError)  # built where cargo is (CI)

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)
KEY = ChainKey("k1", b"chain key \x00\xff bytes")

Record = tuple[str, str, str, dict[str, Any]]

text = st.text(
    st.characters(codec="utf-8") | st.sampled_from('\x00\x01\x08\x0c\x1f\x7f\u2028"\\\n\r\t/é😀')
)
scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**80)
    | st.integers(min_value=-(2**80), max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
plain = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=5),
    max_leaves=25,
)
no_nul = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
records = st.lists(
    st.tuples(no_nul, no_nul, no_nul, st.dictionaries(text, plain, max_size=6)),
    min_size=1,
    max_size=6,
)


def reference(batch: list[Record], first: int, prev: str, key: ChainKey | None) -> list[str]:
    """The hashes `store.append`'s Python path gives these records."""
    hashes = []
    for seq, (actor, action, subject, data) in enumerate(batch, start=first):
        prev = link(prev, Entry(seq, T0, actor, action, subject, data), key)
        hashes.append(prev)
    return hashes


def driver_row(values: list[Any]) -> bytes:
    """One row as the driver writes it for COPY (`storage.bulk.insert_rows`' Python path)."""
    formatter = TextFormatter(Transformer())
    return bytes(formatter.write_row(values)) + bytes(formatter.end())


def orjson_takes(data: dict[str, Any]) -> bool:
    """Whether `column_json` writes `data` with orjson (else with json: the Python path's)."""
    try:
        orjson.dumps(data)
    except TypeError:
        return False
    return True


@settings(max_examples=300)
@given(records, st.integers(1, 2**40), st.sampled_from([GENESIS, "ab" * 32]), st.booleans())
@example(
    [("a", "b", "c", {"é": 1, "e": 2, "z": {"b": [1.5, 1e16, -0.0, 5e-324, 2**64 - 1]}})],
    1,
    GENESIS,
    True,
)
@example([("tab\there", "new\nline", "back\\slash", {"k": '\x00\x1f\\"\n\x0b'})], 7, GENESIS, False)
def test_hashes_and_rows_are_the_python_paths(
    batch: list[Record], first: int, prev: str, keyed: bool
) -> None:
    key = KEY if keyed else None
    done = native.chained(batch, first=first, prev=prev, at=T0, key=key, copy=True)
    if not all(orjson_takes(data) for *_, data in batch):
        assert done is None  # an integer past 64 bits: only json writes its column text
        return
    assert done is not None
    assert done.hashes == reference(batch, first, prev, key)
    assert done.copy is not None
    lines = done.copy.split(b"\n")
    assert lines.pop() == b""  # every row ends with a newline
    assert len(lines) == len(batch)
    links = [prev, *done.hashes]
    for i, (line, (actor, action, subject, data)) in enumerate(zip(lines, batch, strict=True)):
        row = {
            "seq": first + i,
            "at": T0,
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": column_json(data),  # as insert_rows hands it to the driver
            "prev_hash": links[i],
            "hash": links[i + 1],
            "key_id": None if key is None else key.id,
        }
        assert line + b"\n" == driver_row([row[name] for name in native.COLUMNS])


@given(records)
def test_without_copy_it_answers_the_hashes_only(batch: list[Record]) -> None:
    done = native.chained(batch, first=1, prev=GENESIS, at=T0, key=KEY, copy=False)
    assert done is not None and done.copy is None
    assert done.hashes == reference(batch, 1, GENESIS, KEY)


class Colour(enum.StrEnum):
    red = "red"


class Text(str):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"tuple": (1, 2)},
        {"enum": Colour.red},
        {"subclass": Text("x")},
        {"when": T0},
        {"nan": math.nan},
        {"inf": [math.inf]},
        {"lone": "\ud800"},
        {"key": {1: "not a str key"}},
        {"\udc00": "lone surrogate key"},
        {"set": {1}},
        {"bytes": b"x"},
        {"deep": json.loads("[" * 300 + "]" * 300)},
    ],
    ids=lambda data: next(iter(data)),
)
def test_data_that_is_not_plain_json_goes_to_the_python_path(data: dict[str, Any]) -> None:
    batch = [("a", "b", "c", {"fine": 1}), ("a", "b", "c", data)]
    assert native.chained(batch, first=1, prev=GENESIS, at=T0, key=None, copy=True) is None


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_nul_in_a_text_column_goes_to_the_python_path(where: int) -> None:
    texts = ["actor", "action", "subject"]
    texts[where] = "nul\x00here"
    batch: list[Record] = [(texts[0], texts[1], texts[2], {})]
    assert native.chained(batch, first=1, prev=GENESIS, at=T0, key=None, copy=True) is None
    # the hashes alone are fine: the Python path hashes it too
    hashes = native.chained(batch, first=1, prev=GENESIS, at=T0, key=None, copy=False)
    assert hashes is not None and hashes.hashes == reference(batch, 1, GENESIS, None)


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 25, 10, 0, tzinfo=timezone(timedelta(hours=1))),  # hashed in UTC
        datetime(2026, 11, 25, 9, 0),  # naive: as the Python path reads it
        datetime(2026, 11, 25, 9, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_the_time_is_hashed_and_written_as_the_python_path_does(at: datetime) -> None:
    batch = [("a", "b", "c", {"v": 1})]
    done = native.chained(batch, first=3, prev=GENESIS, at=at, key=KEY, copy=True)
    assert done is not None and done.copy is not None
    assert done.hashes == [link(GENESIS, Entry(3, at, "a", "b", "c", {"v": 1}), KEY)]
    assert done.copy.split(b"\t")[1] == driver_row([at])[:-1]


def test_a_head_hash_that_is_not_hex_is_escaped_in_its_row() -> None:
    """The head's hash comes from the database: a forged one cannot add a column or a row."""
    forged = "ab\tcd\n9\\"
    done = native.chained([("a", "b", "c", {})], first=1, prev=forged, at=T0, key=None, copy=True)
    assert done is not None and done.copy is not None
    assert done.copy.count(b"\n") == 1 and done.copy.count(b"\t") == 8
    assert b"ab\\tcd\\n9\\\\" in done.copy


def test_records_that_are_not_tuples_of_texts_are_refused() -> None:
    for bad in [["a", "b", "c", {}], ("a", "b", {}), ("a", 1, "c", {})]:
        assert native.chained([bad], first=1, prev=GENESIS, at=T0, key=None, copy=True) is None  # type: ignore[list-item]
