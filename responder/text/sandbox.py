"""The hardened Jinja2 sandbox every operator-written template is compiled in.

Rule titles (`correlation`) and playbook templates (`playbooks.templating`) are configuration
written by operators; event data only ever arrives as *values* in the context and is never
rendered as a template itself. The sandbox keeps templates away from Python internals (no
`__class__`, `__globals__`, no file or environment access, no mutation of the context) and
refuses the single constructs that would allocate without bound (huge `range`, `'x' * 10**9`,
`2 ** 10**9`, padding methods, `%` and `str.format` width tricks). It does not bound the run time
of deliberately nested loops: rules and playbooks are reviewed code.

Undefined names raise (StrictUndefined); only a short list of harmless filters and the globals
`range` (bounded), `dict` and `namespace` are available.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SIZE = 100_000  # items or characters a single operation may produce
MAX_POWER_BITS = 4_096

_STR_DENIED = frozenset({"format", "format_map", "center", "ljust", "rjust", "zfill", "expandtabs"})
_FILTERS = frozenset(
    {
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "groupby", "int", "items", "join", "last", "length",
        "list", "lower", "map", "max", "min", "reject", "rejectattr", "reverse", "round", "select",
        "selectattr", "sort", "string", "sum", "title", "trim", "truncate", "unique", "upper",
        "urlencode", "wordcount",
    }
)  # fmt: skip
_GLOBALS = frozenset({"dict", "namespace"})


def _bounded_range(*args: int) -> range:
    """`range` limited to MAX_SIZE items (jinja's own limit is 100k; keep ours explicit)."""
    rng = range(*args)
    if len(rng) > MAX_SIZE:
        raise SecurityError(f"range of {len(rng)} items is too large (limit {MAX_SIZE})")
    return rng


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on operators and methods that allocate."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(count, int) and size * count > MAX_SIZE:
                    raise SecurityError(f"repetition would produce {size * count} items")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right > 0 and left.bit_length() * right > MAX_POWER_BITS:
                raise SecurityError(f"{left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("string % formatting is not allowed; use ~ to join strings")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in _STR_DENIED:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        # str.format / format_map are denied outright (is_safe_attribute), not sandboxed
        return None


def _json_filter(default: Callable[[Any], Any] | None) -> Callable[[Any], str]:
    """`tojson` without jinja's `indent` argument (an unbounded allocation)."""

    def fallback(obj: Any) -> Any:
        if default is not None:
            return default(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON data")

    def to_json(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=fallback)

    return to_json


def _bounded_replace(value: str, old: str, new: str, count: int | None = None) -> str:
    hits = len(value) + 1 if old == "" else value.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(value) + hits * (len(new) - len(old)) > MAX_SIZE:
        raise SecurityError("replace would produce too long a string")
    return value.replace(old, new, -1 if count is None else count)


def environment(*, json_default: Callable[[Any], Any] | None = None) -> Sandbox:
    """A new sandboxed environment; `json_default` turns other values into JSON for `tojson`
    (it must raise TypeError for what it does not know, like `json.dumps`'s `default`)."""
    env = Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {k: v for k, v in env.filters.items() if k in _FILTERS}
    env.filters["tojson"] = _json_filter(json_default)
    env.filters["replace"] = _bounded_replace
    env.globals = {k: v for k, v in env.globals.items() if k in _GLOBALS}
    env.globals["range"] = _bounded_range
    return env
