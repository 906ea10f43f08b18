"""The template sandbox: no way to Python internals, files or the environment, no runaway
allocation, no mutation of the context; undefined names fail instead of rendering empty."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from responder.correlation.rules import TEMPLATES
from responder.playbooks.templating import ENV, OutputPlaceholder, TemplateError, render, truthy
from responder.text.sandbox import Sandbox
from tests.support.builders import correlator, event, feed, rule

CONTEXT: dict[str, Any] = {
    "incident": {"id": "inc-1", "group": {"resource.id": "AKIA1"}},
    "events": [{"id": "e1"}],
    "steps": {},
}

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "text {{ ''.__class__ }}",
    "{{ incident.__class__ }}",
    "{{ incident|attr('__class__') }}",
    "{{ events|map(attribute='__class__')|list }}",
    "{{ (1).__class__.__base__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ lipsum() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ range.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ request }}",
    "{{ environ }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
    "{% extends '/etc/hosts' %}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ '{0.__class__}'.format_map({}) }}",
    "{{ incident.update({'id': 'x'}) }}",
    "{{ events.append(1) }}",
    "{{ events.pop() }}",
    "{{ incident.clear() }}",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_internals_files_and_mutation_are_out_of_reach(template: str) -> None:
    context: dict[str, Any] = {
        "incident": dict(CONTEXT["incident"]),
        "events": list(CONTEXT["events"]),
    }
    with pytest.raises(TemplateError):
        render(template, {**CONTEXT, **context}, "step x: with.v")
    assert context["incident"]["id"] == "inc-1"
    assert context["events"] == [{"id": "e1"}]


BOMBS = [
    "{{ range(10**9) | list }}",
    "{% for i in range(10**9) %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ [0] * 10**9 }}",
    "{{ 10**9 * 'a' }}",
    "{{ 2 ** 100000 }}",
    "{{ 'a'.center(10**9) }}",
    "{{ 'a'.ljust(10**9) }}",
    "{{ 'a'.zfill(10**9) }}",
    "{{ '%999999999s' % 'a' }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(10**9) }}",
    "{{ 'x'|format() }}",
    "{{ [1]|batch(10**9, 0)|list }}",
    "{{ range(9)|slice(10**9)|list }}",
    "{{ 'ab'|replace('', 'x' * 99999) }}",
    "{{ incident|tojson(indent=10**9) }}",
    "{{ 1|random }}",
]


@pytest.mark.parametrize("template", BOMBS)
def test_unbounded_constructs_raise_quickly(template: str) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError):
        render(template, CONTEXT)
    assert time.monotonic() - start < 1.0


def test_undefined_names_and_attributes_raise() -> None:
    for template in ("{{ missing }}", "x {{ missing }}", "{{ incident.nope }}", "{{ [missing] }}"):
        with pytest.raises(TemplateError, match=r"undefined|no attribute"):
            render(template, CONTEXT, "step s: with.a")
    with pytest.raises(TemplateError, match="undefined"):
        truthy("{{ missing }}", CONTEXT)
    with pytest.raises(TemplateError, match="'item' is undefined"):
        render("{{ item.id }}", CONTEXT)


def test_error_message_names_location() -> None:
    with pytest.raises(TemplateError) as info:
        render({"text": "{{ ''.__class__ }}"}, CONTEXT, "step notify: with")
    message = str(info.value)
    assert message.startswith("step notify: with.text: not allowed in a template")
    assert "__class__" in message


def test_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="invalid template"):
        render("{{ incident.id ", CONTEXT)


def test_only_data_comes_out() -> None:
    for template in ("{{ dict }}", "{{ namespace }}", "{{ incident.get }}", "{{ self }}"):
        with pytest.raises(TemplateError, match="not data"):
            render(template, CONTEXT)
    assert render("{{ incident.group.items() }}", CONTEXT) == [["resource.id", "AKIA1"]]
    assert render("{{ range(3) }}", CONTEXT) == [0, 1, 2]


def test_harmless_filters_still_work() -> None:
    assert render("{{ events|map(attribute='id')|join(',')|upper }}", CONTEXT) == "E1"
    assert render("{{ incident|tojson }}", {"incident": {"b": 1, "a": "x"}}) == '{"a": "x", "b": 1}'
    assert render("{{ 'a-b'|replace('-', '_') }}", CONTEXT) == "a_b"
    assert render("{{ 3 * 'ab' }}", CONTEXT) == "ababab"
    assert render("{{ 2 ** 10 }}", CONTEXT) == 1024
    assert render("{{ 7 % 3 }}", CONTEXT) == 1
    assert render("{{ 'a/b/c'.split('/')|last }}", CONTEXT) == "c"
    assert render("{{ x | default('none') }}", CONTEXT) == "none"


def test_environment_is_stripped() -> None:
    assert set(ENV.globals) == {"range", "dict", "namespace"}
    for name in ("lipsum", "cycler", "joiner"):
        assert name not in ENV.globals
    for name in ("format", "center", "indent", "wordwrap", "batch", "slice", "random", "pprint"):
        assert name not in ENV.filters
    assert ENV.loader is None
    assert not ENV.autoescape


def test_output_placeholder_is_safe_and_readable() -> None:
    context = {"steps": {"deactivate": {"output": OutputPlaceholder("deactivate")}}}
    value = render("{{ steps.deactivate.output.access_key_id }}", context)
    assert str(value) == "<output of deactivate.access_key_id>"
    assert render("key {{ steps.deactivate.output['x'] }}", context) == (
        "key <output of deactivate.x>"
    )
    with pytest.raises(TemplateError, match="not allowed"):
        render("{{ steps.deactivate.output._path }}", context)
    with pytest.raises(TemplateError, match="not allowed"):
        render("{{ steps.deactivate.output.__class__ }}", context)


# --- rule titles use the same sandbox -----------------------------------------------------------

RULE_TITLE_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ group.__class__ }}",
    "{{ rule|attr('__class__') }}",
    "{{ '{0.__class__}'.format(group) }}",
    "{{ event.update({'id': 'x'}) }}",
    "{{ ('x' * 10**9)|length }}",
    "{{ range(10**9)|list|length }}",
    "{{ lipsum.__globals__ }}",
]


@pytest.mark.parametrize("title", RULE_TITLE_ESCAPES)
def test_rule_title_cannot_escape_the_sandbox(title: str) -> None:
    """A rule title reaching for internals, mutation or huge allocations gets the rule's title."""
    c = correlator(rule(incident={"kind": "k", "title": title}))
    start = time.perf_counter()
    (opened,) = feed(c, event("e1"))
    assert opened.title == "Test rule"
    assert time.perf_counter() - start < 1.0


def test_rule_titles_compile_in_the_hardened_environment() -> None:
    """Rule titles and playbook templates share one sandbox: same class, filters and globals."""
    assert isinstance(TEMPLATES, Sandbox) and isinstance(ENV, Sandbox)
    assert set(TEMPLATES.filters) == set(ENV.filters)
    assert set(TEMPLATES.globals) == set(ENV.globals)
    with pytest.raises(ValidationError, match="No filter named 'pprint'"):
        rule(incident={"kind": "k", "title": "{{ group|pprint }}"})
