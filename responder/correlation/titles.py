"""Incident titles: a rule's title template, rendered once per opened incident (pure).

Titles render in the hardened sandbox (`text/sandbox.py`), which costs several µs a render:
more than the rest of opening an incident. Most titles are literal text, group values and the
count (`Key {{ group['resource.id'] }} used from {{ count }} requests`), so a template of exactly
that shape is also kept as its parts (`plain_parts`, decided once per rule) and its title joined
from them (`render_plain`) whenever every group value it prints is a string of modest size.
Anything else (another shape, a missing or non-string value, a title that would break a render
budget) renders in the sandbox, so the title is the sandbox's either way: a property test holds
the two to the same output. A title depending on the group only is kept per group key.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Template, meta, nodes

from responder.correlation.rules import TEMPLATES, Rule
from responder.correlation.window import WindowEvent
from responder.text.sandbox import MAX_OUTPUT

TITLE_CACHE = 100_000  # rendered titles kept per group key
PLAIN_VALUE = 10_000  # characters of a group value the plain path prints (longer: the sandbox's)

TEXT, GROUP, COUNT = 0, 1, 2
Parts = list[tuple[int, str]]
"""(TEXT, literal text) | (GROUP, group name) | (COUNT, "")"""


def plain_parts(source: str) -> Parts | None:
    """The template as literal text, `group['name']` and `count` parts; None for any other
    shape (filters, attributes, conditions, other names)."""
    tree = TEMPLATES.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts: Parts = []
    for node in tree.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append((TEXT, node.data))
        elif isinstance(node, nodes.Name) and node.name == "count":
            parts.append((COUNT, ""))
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and node.node.name == "group"
            and isinstance(node.arg, nodes.Const)
            and type(node.arg.value) is str
        ):
            parts.append((GROUP, node.arg.value))
        else:
            return None
    return parts


def render_plain(parts: Parts, group: dict[str, Any], count: int) -> str | None:
    """The title joined from its parts; None where the sandbox must decide."""
    out = []
    for kind, text in parts:
        if kind == TEXT:
            out.append(text)
        elif kind == COUNT:
            out.append(str(count))
        else:
            value = group.get(text)
            if type(value) is not str or len(value) > PLAIN_VALUE:
                return None
            out.append(value)
    title = "".join(out)
    return title if len(title) <= MAX_OUTPUT else None


class Titles:
    """Renders incident titles for the rules of one engine."""

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[Template, set[str], Parts | None]] = {}
        self._by_group: dict[str, str] = {}

    def render(
        self, rule: Rule, key: str, group: dict[str, Any], event: WindowEvent, count: int
    ) -> str:
        """The title of an incident the group `key` opens with `count` events, `event` the one
        that made it fire."""
        compiled = self._compiled.get(rule.id)
        if compiled is None:
            source = rule.incident.title or rule.title
            names = meta.find_undeclared_variables(TEMPLATES.parse(source))
            compiled = self._compiled[rule.id] = (
                TEMPLATES.from_string(source),
                names,
                plain_parts(source),
            )
        template, names, parts = compiled
        by_group = not names & {"event", "count"}  # the same for every incident of a group
        if by_group and key in self._by_group:
            return self._by_group[key]
        title = None if parts is None else render_plain(parts, group, count)
        if title is None:
            try:
                title = template.render(
                    group=group,
                    rule={"id": rule.id, "title": rule.title},
                    event=event.doc() if "event" in names else None,  # parsed only when read
                    count=count,
                )
            except Exception:  # a title must never stop correlation; fall back to the rule title
                title = rule.title
        if by_group:
            if len(self._by_group) > TITLE_CACHE:
                self._by_group.clear()
            self._by_group[key] = title
        return title
