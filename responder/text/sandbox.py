"""The hardened Jinja2 sandbox every operator-written template is compiled in.

Rule titles (`correlation`) and playbook templates (`playbooks.templating`) are configuration
written by operators; event data only ever arrives as *values* in the context and is never
rendered as a template itself. The sandbox keeps templates away from Python internals (no
`__class__`, `__globals__`, no file or environment access, no mutation of the context) and
refuses the single constructs that would allocate without bound (huge `range`, `'x' * 10**9`,
`2 ** 10**9`, padding methods, `%` and `str.format` width tricks).

Budgets, enforced while a template renders (a `SecurityError`, never an out-of-memory):

- `MAX_ITERATIONS` loop iterations per render, all `for` loops together (nested loops over
  `range(100000)` stop there instead of running for hours);
- `MAX_OUTPUT` characters of output per render;
- `MAX_CALL_DEPTH` nested calls (a recursive macro stops there with a clear error, not with
  Python's recursion limit);
- `MAX_VALUE` for any one value a template prints, joins with `~`, passes to a filter or method
  or gets back from one: its weight is its characters plus one per item, counted through nested
  lists and dicts with shared items counted each time, so `[[0]*100000]*100000` (small in memory,
  30 GB as text) is refused before anything turns it into text. Counting stops at the limit.

Undefined names raise (StrictUndefined); only a short list of harmless filters and the globals
`range` (bounded), `dict` and `namespace` are available.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_SIZE = 100_000  # items or characters a single operation may produce
MAX_POWER_BITS = 4_096
MAX_ITERATIONS = 100_000  # loop iterations one render may run, all loops together
MAX_OUTPUT = 2_000_000  # characters one render may produce
MAX_VALUE = 2_000_000  # weight (characters + items) of one value an operation takes or gives
MAX_CALL_DEPTH = 40  # macros calling macros (each level costs jinja several Python frames)

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


def weight(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters plus items of `value` through nested containers (shared items counted each
    time they occur), counted up to just past `limit`: a huge value costs about `limit` steps
    to measure, and a container seen again costs one."""
    return _weight(value, limit, {}, 0)


_MAX_DEPTH = 200  # deeper than any event or template value; deeper counts as too large


def _weight(value: Any, limit: int, seen: dict[int, int], depth: int) -> int:
    if isinstance(value, str | bytes):
        return 1 + len(value)
    if isinstance(value, int):
        return 1 + value.bit_length() // 3
    if isinstance(value, dict):
        items: Iterable[Any] = _pairs(value)
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return 1
    known = seen.get(id(value))
    if known is not None:
        return known
    if depth > _MAX_DEPTH:
        return limit + 1
    total = 1
    for item in items:
        total += _weight(item, limit - total, seen, depth + 1)
        if total > limit:
            break
    seen[id(value)] = total
    return total


def _pairs(mapping: dict[Any, Any]) -> Iterator[Any]:
    for key, value in mapping.items():
        yield key
        yield value


def _check(value: Any, what: str) -> Any:
    if weight(value) > MAX_VALUE:
        raise SecurityError(f"{what} is too large (limit {MAX_VALUE} characters and items)")
    return value


class _Budget:
    """What one render has used so far (kept on its jinja Context)."""

    __slots__ = ("depth", "iterations")

    def __init__(self) -> None:
        self.iterations = 0
        self.depth = 0  # calls (macros, methods) in progress


def _budget(context: Context) -> _Budget:
    budget: _Budget | None = context.__dict__.get("_responder_budget")
    if budget is None:
        budget = context.__dict__["_responder_budget"] = _Budget()
    return budget


def _bounded_iter(iterable: Iterable[Any], context: Context) -> Iterator[Any]:
    budget = _budget(context)
    for item in iterable:
        budget.iterations += 1
        if budget.iterations > MAX_ITERATIONS:
            raise SecurityError(f"more than {MAX_ITERATIONS} loop iterations in one render")
        yield item


def _bounded_concat(*parts: Any) -> str:
    for part in parts:
        _check(part, "an operand of ~")
    return "".join(map(str, parts))


def _bounded_output(pieces: Iterable[str]) -> str:
    """`Environment.concat`: joins a render's (or a block's) output, up to MAX_OUTPUT."""
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT:
            raise SecurityError(f"the output is longer than {MAX_OUTPUT} characters")
        out.append(piece)
    return "".join(out)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for arg in (*args, *kwargs.values()):
            if not isinstance(arg, Context | Sandbox):  # pass_context / pass_environment
                _check(arg, f"the input of the {name} filter")
        return _check(func(*args, **kwargs), f"the result of the {name} filter")

    if hasattr(func, "jinja_pass_arg"):  # keep pass_context / pass_environment working
        bounded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class _Budgeted(NodeTransformer):
    """Every `for` loop iterates through `_bounded_iter`; every `~` goes through
    `_bounded_concat` (both reached as environment attributes, out of the template's reach)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("bounded_iter"),
            [node.iter, nodes.ContextReference()],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.EnvironmentAttribute("bounded_concat"), node.nodes, [], None, None,
            lineno=node.lineno,
        )  # fmt: skip


_JINJA_KWARGS = frozenset({"_loop_vars", "_block_vars"})  # what jinja passes along with a call


def bounded(value: Any, what: str = "the value") -> Any:
    """`value`, or SecurityError when its weight exceeds MAX_VALUE (for native results)."""
    return _check(value, what)


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus limits on operators and methods that allocate, and the
    render budgets (module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%"})
    concat = staticmethod(_bounded_output)
    bounded_iter = staticmethod(_bounded_iter)
    bounded_concat = staticmethod(_bounded_concat)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            return super()._parse(source, name, filename)
        except RecursionError:  # `{{{{{{...`: Jinja's parser recurses per level
            raise _too_deep(name, filename) from None

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        try:
            budgeted = _Budgeted().visit(source)
            return super()._generate(budgeted, name, filename, defer_init)
        except RecursionError:
            raise _too_deep(name, filename) from None

    def compile_expression(self, source: str, undefined_to_none: bool = True) -> TemplateExpression:
        try:
            return super().compile_expression(source, undefined_to_none)
        except RecursionError:
            raise _too_deep(None, None) from None

    def call(self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if __obj is _bounded_iter or __obj is _bounded_concat:
            return __obj(*args)
        for key, arg in (*enumerate(args), *kwargs.items()):
            if key not in _JINJA_KWARGS:
                _check(arg, "an argument")
        budget = _budget(__context)
        if budget.depth >= MAX_CALL_DEPTH:
            raise SecurityError(f"calls nest deeper than {MAX_CALL_DEPTH} (a recursive macro?)")
        budget.depth += 1
        try:
            return _check(super().call(__context, __obj, *args, **kwargs), "a result")
        finally:
            budget.depth -= 1

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


def _too_deep(name: str | None, filename: str | None) -> TemplateSyntaxError:
    """A template nested past what the parser can hold: refused like any syntax error."""
    return TemplateSyntaxError("the template nests too deeply", 1, name, filename)


def environment(*, json_default: Callable[[Any], Any] | None = None) -> Sandbox:
    """A new sandboxed environment; `json_default` turns other values into JSON for `tojson`
    (it must raise TypeError for what it does not know, like `json.dumps`'s `default`)."""
    env = Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=lambda value: _check(value, "a printed value"),
    )
    filters = {k: v for k, v in env.filters.items() if k in _FILTERS}
    filters["tojson"] = _json_filter(json_default)
    filters["replace"] = _bounded_replace
    env.filters = {name: _bounded_filter(name, func) for name, func in filters.items()}
    env.globals = {k: v for k, v in env.globals.items() if k in _GLOBALS}
    env.globals["range"] = _bounded_range
    return env
