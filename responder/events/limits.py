"""What an event may hold so that every later stage can carry it without failing or losing data.

Ingest re-serializes events with orjson, the correlation stage turns times back into datetimes,
the sink writes bodies to SQL (PostgreSQL text cannot hold NUL). So the validator refuses, on
top of the schema: integers outside the 64-bit range orjson writes (signed minimum to unsigned
maximum), non-finite numbers (`NaN`, `Infinity`, or a literal such as `1e999` that overflows to
infinity; orjson would write them as `null`), NUL characters, times whose UTC conversion or
epoch round trip would overflow, and duplicate object keys (parsers disagree on which wins).
Pure functions, shared by the model (`SecurityEvent`) and the worker's fast path.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
# Whole seconds only at the top: 9999-12-31T23:59:59.5Z does not survive a float epoch round trip.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
EARLIEST_TS = EARLIEST.timestamp()
LATEST_TS = LATEST.timestamp()
MAX_KEY_SHOWN = 64


def shown(text: str) -> str:
    """A bounded `repr` of attacker-chosen text, for reasons and error messages."""
    if len(text) > MAX_KEY_SHOWN:
        return repr(text[:MAX_KEY_SHOWN]) + "..."
    return repr(text)


def uncarriable(value: Any) -> str | None:
    """Why a parsed JSON value cannot travel through the pipeline (`path: problem`), or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return f"{path or '<value>'}: NUL characters are not allowed"
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return f"{path or '<value>'}: integer outside the 64-bit range"
        elif kind is float:
            if not math.isfinite(item):
                return f"{path or '<value>'}: not a finite number"
        elif kind is dict:
            for key, sub in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"{path or '<value>'}: NUL characters are not allowed in keys"
                stack.append((f"{path}.{key}" if path else str(key), sub))
        elif kind is list:
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
    return None


def check_carriable(value: Any) -> Any:
    """Pydantic after-validator form of `uncarriable`."""
    problem = uncarriable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def in_range_utc(moment: datetime) -> datetime:
    """The time in UTC, if it and its epoch seconds stay within years 1..9999."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range once converted to UTC") from None
    if not EARLIEST <= utc <= LATEST:
        raise ValueError("time is out of range (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z)")
    return utc


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen.add(key)


def _skip(_: str) -> None:
    return None


def duplicate_key(raw: bytes | str) -> str | None:
    """Why `raw` has a key twice in one JSON object (`duplicate key 'id'`), or None.

    Call it on documents that already parsed: it only looks for duplicates (numbers are not even
    converted). Input the standard library cannot read is refused too, so nothing slips through.
    """
    try:
        json.loads(
            raw,
            object_pairs_hook=_pairs,
            parse_int=_skip,
            parse_float=_skip,
            parse_constant=_skip,
        )
    except _Duplicate as dup:
        return f"duplicate key {shown(dup.key)}"
    except (ValueError, RecursionError):
        return "JSON the duplicate-key check cannot read"
    return None
