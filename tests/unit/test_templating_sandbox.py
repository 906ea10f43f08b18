"""The template sandbox: no way to Python internals, files or the environment, no runaway
allocation, no mutation of the context; undefined names fail instead of rendering empty."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2 import TemplateSyntaxError
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
def test_unbounded_constructs_raise(template: str) -> None:
    """The sandbox's budgets end each construct with an error instead of running it out."""
    with pytest.raises(TemplateError):
        render(template, CONTEXT)


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


@pytest.mark.parametrize(
    "source",
    [
        "{{" * 100_000,  # Jinja's parser recurses per level: a RecursionError, not a refusal
        "{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}",
        "{% if " + "[" * 50_000 + " %}",
    ],
)
def test_a_template_nested_too_deeply_is_refused_as_a_syntax_error(source: str) -> None:
    with pytest.raises(TemplateError, match="invalid template: the template nests too deeply"):
        render(source, CONTEXT)
    with pytest.raises(TemplateSyntaxError, match="nests too deeply"):
        TEMPLATES.from_string(source)  # the rules' titles compile here
    with pytest.raises(ValidationError, match="nests too deeply"):
        rule(incident={"kind": "x", "title": source})


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
    (opened,) = feed(c, event("e1"))
    assert opened.title == "Test rule"


def test_rule_titles_compile_in_the_hardened_environment() -> None:
    """Rule titles and playbook templates share one sandbox: same class, filters and globals."""
    assert isinstance(TEMPLATES, Sandbox) and isinstance(ENV, Sandbox)
    assert set(TEMPLATES.filters) == set(ENV.filters)
    assert set(TEMPLATES.globals) == set(ENV.globals)
    with pytest.raises(ValidationError, match="No filter named 'pprint'"):
        rule(incident={"kind": "k", "title": "{{ group|pprint }}"})


# --- budgets while rendering (issue 8, item 7) ---------------------------------------------------

BUDGET_BOMBS = [
    ("{{ [[0]*100000]*100000 }}", "too large"),  # 800 KB in memory, 30 GB as text
    ("x {{ [[0]*100000]*100000 }}", "too large"),
    ("{{ ([[0]*100000]*100000)|tojson }}", "tojson filter is too large"),
    ("{{ ([[0]*100000]*100000)|string }}", "string filter is too large"),
    ("{{ ([[0]*100000]*100000)|join(',') }}", "join filter is too large"),
    ("{{ ([['x']*100000]*100000)|sum(start=[])|length }}", "sum filter is too large"),
    ("{{ 'a' ~ [[0]*100000]*100000 }}", "operand of ~ is too large"),
    ("{{ ','.join(['x' * 100000] * 100000) }}", "argument is too large"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop"),
    ("{% for i in range(100000) %}{{ i }}{% endfor %}{% for i in range(2) %}{% endfor %}", "loop"),
    ("{% for i in range(2000) %}{{ 'x' * 2000 }}{% endfor %}", "output is longer"),
    ("{% set s %}{% for i in range(2000) %}{{ 'y' * 2000 }}{% endfor %}{% endset %}{{ s }}",
     "output is longer"),
    ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "calls nest deeper than 40"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "reason"), BUDGET_BOMBS)
def test_render_budgets_stop_playbook_templates(template: str, reason: str) -> None:
    """Each of these passes validation (it parses and allocates nothing by itself); rendering
    stops at a budget with a clear error instead of using gigabytes or hours."""
    with pytest.raises(TemplateError, match=reason) as info:
        render(template, CONTEXT, "step s: with.v")
    assert str(info.value).startswith("step s: with.v: not allowed in a template")


@pytest.mark.parametrize(("template", "_"), BUDGET_BOMBS)
def test_render_budgets_stop_rule_titles(template: str, _: str) -> None:
    """Rule titles get the same budgets; the incident falls back to the rule's own title."""
    c = correlator(rule(incident={"kind": "k", "title": template}))
    (opened,) = feed(c, event("e1"))
    assert opened.title == "Test rule"


def test_budgets_leave_ordinary_templates_alone() -> None:
    big = {"events": [{"id": f"e{i}", "text": "x" * 1000} for i in range(500)]}
    assert render("{{ events|map(attribute='id')|list|length }}", big) == 500
    assert len(render("{% for e in events %}{{ e.id }},{% endfor %}", big)) > 2000
    assert render("{% for i in range(3) %}{{ i ~ '-' }}{% endfor %}", CONTEXT) == "0-1-2-"
    assert render("{% for i in range(99999) %}{% endfor %}ok", CONTEXT) == "ok"
    macro = "{% macro m(a) %}<{{ a }}>{% endmacro %}{% for i in range(2) %}{{ m(i) }}{% endfor %}"
    assert render(macro, CONTEXT) == "<0><1>"
    assert render("{{ [[0] * 10] * 10 }}", CONTEXT) == [[0] * 10] * 10


def test_each_render_gets_its_own_budget() -> None:
    template = "{% for i in range(60000) %}{% endfor %}{{ incident.id }}"
    for _ in range(3):  # 180,000 iterations in all: over one render's budget, not per render
        assert render(template, CONTEXT) == "inc-1"
