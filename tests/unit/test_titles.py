"""Incident titles: the plain path joins exactly what the sandbox would render."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from responder.correlation.rules import TEMPLATES
from responder.correlation.titles import Titles, plain_parts, render_plain
from responder.correlation.window import WindowEvent
from tests.support.builders import rule

NAMES = ["resource.id", "attributes.alias", "a'b", "x"]
# what a template may be made of: text (with Jinja's own whitespace and escapes), the group's
# values, the count, and shapes only the sandbox renders (filters, attributes, literals, ...)
PIECES = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=12),
    st.just("\n"),
    st.sampled_from([f"{{{{ group[{name!r}] }}}}" for name in NAMES]),
    st.just("{{ count }}"),
    st.just("{{- group['x'] -}}"),
    st.sampled_from(
        [
            "{{ group.x }}",
            "{{ rule.id }}",
            "{{ group['x'] | upper }}",
            "{{ 'lit' }}",
            "{% if count %}n{% endif %}",
            "{{ group[1] }}",
            "{{ count + 1 }}",
        ]
    ),
)
VALUES = st.one_of(
    st.text(max_size=20),
    st.text(max_size=3).map(lambda t: t * 5000),  # long: the plain path stands aside
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _sandbox(source: str, group: dict[str, Any], count: int) -> str | None:
    try:
        return TEMPLATES.from_string(source).render(
            group=group, rule={"id": "r", "title": "Test rule"}, event=None, count=count
        )
    except Exception:
        return None


@settings(max_examples=400)
@given(
    st.lists(PIECES, min_size=1, max_size=6).map("".join),
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
    st.integers(0, 10**6),
)
def test_the_plain_path_renders_what_the_sandbox_renders(
    source: str, group: dict[str, Any], count: int
) -> None:
    try:
        TEMPLATES.parse(source)
    except Exception:
        return  # rules refuse such a title when they load
    parts = plain_parts(source)
    plain = None if parts is None else render_plain(parts, group, count)
    if plain is not None:
        assert plain == _sandbox(source, group, count)
    title = Titles().render(
        rule(id="r", incident={"kind": "t", "title": source}), "k", group, EV, count
    )
    rendered = _sandbox(source or "Test rule", group, count)  # an empty title: the rule's
    assert title == ("Test rule" if rendered is None else rendered)  # failed: the rule's title


EV = WindowEvent(0.0, 0, "s", "e1", "t", 1, None, {"id": "e1"})


def test_the_shipped_shapes_take_the_plain_path() -> None:
    parts = plain_parts("Key {{ group['resource.id'] }} used from {{ count }} requests")
    assert parts is not None
    assert render_plain(parts, {"resource.id": "AKIA1"}, 3) == "Key AKIA1 used from 3 requests"
    assert render_plain(parts, {"resource.id": 7}, 3) is None  # the sandbox prints numbers
    assert render_plain(parts, {}, 3) is None  # and words the failure (the rule title)
    assert plain_parts("{{ group['x'] | upper }}") is None
    assert plain_parts("{{ event.id }}") is None
