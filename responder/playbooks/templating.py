"""Playbook templates: `with` values, `if`, `for_each`, `undo.with`, rendered in the sandbox.

Pure. Templates compile in the hardened sandbox of `responder.text.sandbox` (the one rule titles
use too); this module adds what playbooks need on top: native values, conditions, the
references a template makes (checked at load time) and placeholders for dry runs.

A string that is exactly one `{{ expression }}` renders to the expression's native value (list,
dict, bool, number), so `with: {bad_versions: "{{ events | map(attribute='id') | list }}"}`
hands the action a list. Every failure is a `TemplateError` naming where it happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, MappingView
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import jinja2
from jinja2 import Template, Undefined, meta, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError

from responder.text import sandbox

_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_MARKERS = ("{{", "{%", "{#")


class TemplateError(jinja2.TemplateError):
    """A template failed to compile or render; `location` says which step and field."""

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(f"{location}: {reason}" if location else reason)


class OutputPlaceholder:
    """Stands for a step output that is not known yet (dry-run planning).

    Any attribute or item of it is another placeholder, and it prints as
    `<output of deactivate.access_key_id>`, so a planned `with` reads like the real one.
    """

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> OutputPlaceholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return OutputPlaceholder(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> OutputPlaceholder:
        return OutputPlaceholder(f"{self._path}.{key}")

    def __iter__(self) -> Iterator[OutputPlaceholder]:
        yield OutputPlaceholder(f"{self._path}[*]")

    def __str__(self) -> str:
        return f"<output of {self._path}>"

    __repr__ = __str__


def _placeholder_json(obj: Any) -> str:
    if isinstance(obj, OutputPlaceholder):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON data")


ENV = sandbox.environment(json_default=_placeholder_json)
"""The one environment every playbook template is compiled in."""

CONTEXT_NAMES = frozenset({"incident", "events", "steps", "item", "playbook", "vars"})
"""Variables a template may use besides the environment's globals (see `step_context`)."""


def is_template(value: str) -> bool:
    return any(marker in value for marker in _MARKERS)


def has_template(value: Any) -> bool:
    """True if `value` or anything nested in it is a template string."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, Mapping):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    return False


def _single_expression(source: str) -> str | None:
    match = _EXPRESSION.match(source)
    if match is None:
        return None
    inner = match.group("expr")
    return None if any(m in inner for m in (*_MARKERS, "}}", "%}")) else inner


@lru_cache(maxsize=2048)
def _compiled(source: str) -> Template | TemplateExpression:
    expr = _single_expression(source)
    if expr is not None:
        return ENV.compile_expression(expr, undefined_to_none=False)
    return ENV.from_string(source)


@dataclass(frozen=True)
class References:
    """What a template reads, found in its AST at load time (nothing is rendered)."""

    names: frozenset[str]  # free variables, e.g. {"incident", "steps"}
    steps: frozenset[str]  # ids in `steps.<id>` / `steps['<id>']`
    dynamic_steps: bool  # `steps` used any other way (`steps[x]`, `steps | list`)


def references(source: str) -> References:
    """Parse `source` (raises jinja2.TemplateSyntaxError) and list what it refers to."""
    ast = ENV.parse(source)
    names = frozenset(meta.find_undeclared_variables(ast))
    ids: set[str] = set()
    resolved = 0
    for attr in ast.find_all(nodes.Getattr):
        if _is_steps(attr.node):
            ids.add(attr.attr)
            resolved += 1
    for item in ast.find_all(nodes.Getitem):
        arg = item.arg
        if _is_steps(item.node) and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            ids.add(arg.value)
            resolved += 1
    uses = sum(1 for n in ast.find_all(nodes.Name) if n.name == "steps" and n.ctx == "load")
    return References(names, frozenset(ids), dynamic_steps="steps" in names and uses > resolved)


def _fail(location: str, exc: Exception) -> TemplateError:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(location, f"invalid template: {exc.message} (line {exc.lineno})")
    if isinstance(exc, SecurityError):
        return TemplateError(location, f"not allowed in a template: {exc}")
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(location, str(exc.message))
    return TemplateError(location, f"{type(exc).__name__}: {exc}")


def _to_data(value: Any, location: str) -> Any:
    """Native results must be plain data: no Undefined, callables, classes or generators."""
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises its own UndefinedError / SecurityError here
        raise TemplateError(location, "renders to an undefined value")
    if value is None or isinstance(value, bool | int | float | str | OutputPlaceholder):
        return value
    if isinstance(value, Mapping):
        return {str(k): _to_data(v, location) for k, v in value.items()}
    if isinstance(value, list | tuple | range | Iterator | MappingView):
        return [_to_data(v, location) for v in cast(Iterable[Any], value)]
    raise TemplateError(location, f"renders to a {type(value).__name__}, not data")


def render_string(source: str, context: Mapping[str, Any], location: str = "") -> Any:
    """Render one string: native value for a lone `{{ expr }}`, else a str."""
    if not is_template(source):
        return source
    try:
        compiled = _compiled(source)
        if isinstance(compiled, TemplateExpression):
            return _to_data(sandbox.bounded(compiled(**context), "the result"), location)
        return compiled.render(**context)
    except TemplateError:
        raise
    except Exception as exc:  # every failure of a user template is the author's to fix
        raise _fail(location, exc) from None


def render(value: Any, context: Mapping[str, Any], location: str = "") -> Any:
    """Render every template string inside dicts and lists; other values pass through."""
    if isinstance(value, str):
        return render_string(value, context, location)
    if isinstance(value, Mapping):
        return {k: render(v, context, _join(location, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context, f"{location}[{i}]") for i, v in enumerate(value)]
    return value


def _join(location: str, key: str) -> str:
    return f"{location}.{key}" if location else key


_FALSE_WORDS = frozenset({"", "false", "no", "off", "0", "none", "null"})


def truthy(template: str, context: Mapping[str, Any], location: str = "") -> bool:
    """Render a condition. A native value uses Python truth; text is false when it reads
    `false`, `no`, `off`, `0`, `none`, `null` or is blank (so `"{{ a }} {{ b }}"`-style
    conditions that render to words still mean what they say)."""
    value = render_string(template, context, location)
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)


def _is_steps(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "steps"
