"""Field matching for rules: dotted paths into an event and the operators after `|`.

Pure functions over the JSON form of an event (`dict`), so the same code serves the worker, the
offline replay and the tests. A `Condition` is compiled once when a rule loads. The `re`
modifier runs on event content, so it uses the linear-time engine (`security.patterns`, RE2):
a pattern RE2 refuses is refused when the rule loads, and values are matched on their first
`MAX_MATCH_CHARS` characters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from responder.security.patterns import compile_linear, search

MISSING: Any = object()

MODIFIERS = ("eq", "contains", "startswith", "endswith", "re", "gt", "gte", "lt", "lte", "exists")
NUMERIC = {"gt", "gte", "lt", "lte"}


def get_path(doc: Mapping[str, Any], path: str | tuple[str, ...]) -> Any:
    """Value at a dotted path, or MISSING.

    Nested keys are tried first; where that fails, keys that themselves contain dots (labels
    such as `app.kubernetes.io/name`) are tried, longest first.
    """
    parts = tuple(path.split(".")) if isinstance(path, str) else path
    current: Any = doc
    for part in parts:
        if type(current) is dict and part in current:
            current = current[part]
        else:
            return _get_dotted(doc, parts)
    return current


def _get_dotted(doc: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    current: Any = doc
    i = 0
    while i < len(parts):
        if not isinstance(current, Mapping):
            return MISSING
        for j in range(len(parts), i, -1):
            candidate = ".".join(parts[i:j])
            if candidate in current:
                current = current[candidate]
                i = j
                break
        else:
            return MISSING
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _eq(actual: Any, expected: Any) -> bool:
    if _is_number(actual) and _is_number(expected):
        return bool(actual == expected)
    return type(actual) is type(expected) and actual == expected


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str) and isinstance(expected, str):
        return expected in actual
    if isinstance(actual, list):
        return any(_eq(item, expected) for item in actual)
    return False


def _compare(op: str) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        if not (_is_number(actual) and _is_number(expected)):
            return False
        if op == "gt":
            return bool(actual > expected)
        if op == "gte":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)

    return check


def _string_op(method: str) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        return isinstance(actual, str) and bool(getattr(actual, method)(expected))

    return check


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _eq,
    "contains": _contains,
    "startswith": _string_op("startswith"),
    "endswith": _string_op("endswith"),
    **{op: _compare(op) for op in NUMERIC},
}


@dataclass(frozen=True)
class Condition:
    """One `path|modifier: value` entry; a list of values means any of them."""

    path: str
    modifier: str
    values: tuple[Any, ...]
    parts: tuple[str, ...] = ()
    strings: frozenset[str] | None = None  # fast path: equality against strings only

    @classmethod
    def parse(cls, key: str, value: Any) -> Condition:
        """Raise ValueError with a user-facing message when the entry cannot work."""
        path, _, modifier = key.partition("|")
        modifier = modifier or "eq"
        if not path or any(not p for p in path.split(".")):
            raise ValueError(f"invalid field path {key!r}")
        if modifier not in MODIFIERS:
            raise ValueError(f"unknown modifier {modifier!r}; use one of {', '.join(MODIFIERS)}")
        values = tuple(value) if isinstance(value, list) else (value,)
        if not values:
            raise ValueError("an empty list matches nothing")
        for v in values:
            _check_value(modifier, v)
        strings = None
        if modifier == "eq" and all(type(v) is str for v in values):
            strings = frozenset(values)
        return cls(path, modifier, values, tuple(path.split(".")), strings)

    def holds(self, doc: Mapping[str, Any]) -> bool:
        return self.check(doc)

    @cached_property
    def check(self) -> Callable[[Mapping[str, Any]], bool]:
        """`holds`, specialised once for the common shapes (the worker calls it per event)."""
        parts, strings = self.parts, self.strings
        if strings is not None and len(parts) == 2:
            first, second = parts

            def string_at_two(doc: Mapping[str, Any]) -> bool:
                inner = doc.get(first)
                if type(inner) is dict and second in inner:
                    value = inner[second]
                else:
                    value = get_path(doc, parts)
                return type(value) is str and value in strings

            return string_at_two
        if strings is not None:
            return lambda doc: (type(v := get_path(doc, parts)) is str) and v in strings
        if self.modifier in NUMERIC and len(self.values) == 1:
            op, bound = _OPS[self.modifier], self.values[0]

            def compare(doc: Mapping[str, Any]) -> bool:
                actual = get_path(doc, parts)
                return actual is not MISSING and op(actual, bound)

            return compare
        return self._holds

    def _holds(self, doc: Mapping[str, Any]) -> bool:
        actual = get_path(doc, self.parts)
        if self.strings is not None:
            return type(actual) is str and actual in self.strings
        if self.modifier == "exists":
            return any((actual is not MISSING and actual is not None) == v for v in self.values)
        if actual is MISSING:
            return False
        if self.modifier == "re":
            return isinstance(actual, str) and any(search(v, actual) for v in self.values)
        op = _OPS[self.modifier]
        return any(op(actual, v) for v in self.values)


def _check_value(modifier: str, value: Any) -> None:
    if modifier == "exists":
        if not isinstance(value, bool):
            raise ValueError("exists takes true or false")
    elif modifier in NUMERIC:
        if not _is_number(value):
            raise ValueError(f"{modifier} needs a number, got {value!r}")
    elif modifier in {"startswith", "endswith", "re"}:
        if not isinstance(value, str):
            raise ValueError(f"{modifier} needs a string, got {value!r}")
        if modifier == "re":
            try:
                compile_linear(value)
            except ValueError as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    elif isinstance(value, dict | list):
        raise ValueError(f"{modifier} needs a scalar value, got {value!r}")


def all_hold(conditions: tuple[Condition, ...], doc: Mapping[str, Any]) -> bool:
    return all(c.holds(doc) for c in conditions)
