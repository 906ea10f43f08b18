"""Property-based runs over what operators and attackers write that the other hostile-input
tests do not cover: templates (playbooks and rule titles), `re` patterns, secret masking, the
audit anchors read back from outside, and the commands and incident changes the stages decode.

Each property starts from a committed corpus of attack examples (`tests/fixtures/fuzz/*.json`)
and mutates it. In CI the runs are bounded by the `ci` profile (tests/conftest.py); for a long
run: `HYPOTHESIS_PROFILE=fuzz pytest tests/unit/test_fuzz_untrusted.py`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from responder.audit.anchors import parse as parse_anchor
from responder.commands import COMMAND
from responder.correlation.match import Condition
from responder.correlation.rules import TEMPLATES
from responder.incidents.model import IncidentChange
from responder.playbooks.templating import TemplateError, render
from responder.security.patterns import PatternError, compile_linear, search
from responder.security.redact import REDACTED, mask_text
from responder.text.sandbox import MAX_OUTPUT

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "fuzz"


def corpus(name: str) -> list[Any]:
    cases: list[Any] = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))["cases"]
    return cases


TEMPLATES_CORPUS: list[str] = corpus("templates")
PATTERNS_CORPUS: list[str] = corpus("patterns")
SECRETS_CORPUS: list[list[str]] = corpus("secrets")

JINJA_BITS = [
    "{{", "}}", "{%", "%}", "for i in range(", ")", "endfor", "*", "**", "~", "|", "join",
    "tojson", "string", "list", "sum", "[0]", "10**9", "100000", "'x'", "__class__", "loop",
    "set", "endset", "macro", "endmacro", "recursive", "events", "incident", "(", "[", "]",
]  # fmt: skip


@st.composite
def templates(draw: st.DrawFn) -> str:
    """A corpus template with up to three snippets of template syntax spliced in."""
    text = draw(st.sampled_from(TEMPLATES_CORPUS))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        bit = draw(st.one_of(st.sampled_from(JINJA_BITS), st.text(max_size=4)))
        text = text[:at] + bit + text[at:]
    return text


CONTEXT: dict[str, Any] = {
    "incident": {"id": "inc-1", "group": {"resource.id": "AKIA1"}, "title": "[/oops] \x1b[31m"},
    "events": [{"id": f"e{i}", "title": "x" * 100} for i in range(20)],
    "steps": {},
}


@given(templates())
def test_playbook_templates_render_or_fail_with_a_template_error(source: str) -> None:
    """Never another exception, never more than the output budget."""
    try:
        value = render(source, CONTEXT, "step s: with.v")
    except TemplateError:
        return
    assert len(str(value)) <= MAX_OUTPUT


@given(templates())
def test_rule_titles_render_or_raise_what_the_engine_catches(source: str) -> None:
    """The engine falls back to the rule's title on any Exception: what matters is that none
    is a MemoryError or takes unbounded time, and that output stays within the budget."""
    try:
        title = TEMPLATES.from_string(source).render(group={"resource.id": "x"}, count=3)
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError):
        return
    except AttributeError:
        return
    assert len(title) <= MAX_OUTPUT


PATTERN_BITS = ["(", ")", "*", "+", "?", "{2,}", "\\1", "(?=", "(?<=", "[", "]", "|", ".", "$"]


@st.composite
def patterns(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(PATTERNS_CORPUS))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(PATTERN_BITS)) + text[at:]
    return text


@given(patterns(), st.text(max_size=300))
@example(r"^(a+)+$", "a" * 5000 + "!")
@example(r"(x+x+)+y", "x" * 5000)
def test_patterns_compile_linear_or_are_refused_and_match_anything(
    pattern: str, value: str
) -> None:
    try:
        compile_linear(pattern)
    except PatternError:
        with pytest.raises(ValueError, match="invalid regular expression"):
            Condition.parse("title|re", pattern)
        return
    assert search(pattern, value) in (True, False)
    assert Condition.parse("title|re", pattern).holds({"title": value}) in (True, False)


SEPARATORS = [" ", "\n", "\t", '"', "'", ",", ";", "(", ")", "<", ">", ""]


@given(
    st.sampled_from(SECRETS_CORPUS),
    st.text(max_size=40).map(lambda t: t + " "),
    st.sampled_from(SEPARATORS),
    st.text(max_size=40).map(lambda t: " " + t),
)
def test_a_secret_between_separators_is_masked_anywhere(
    case: list[str], before: str, separator: str, after: str
) -> None:
    text, secret = case
    masked = mask_text(before + separator + text + separator + after)
    assert secret not in masked
    assert REDACTED in masked


@given(st.text(max_size=500))
def test_masking_any_text_never_raises_and_is_stable(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@given(st.one_of(st.binary(max_size=600), st.text(max_size=600)))
@example(b'{"seq": 1, "hash": "' + b"a" * 64 + b'", "at": "2026-11-30T12:00:00Z"}')
@example(b'{"seq": true, "hash": "' + b"a" * 64 + b'", "at": "2026-11-30T12:00:00Z"}')
@example(b'{"seq": 1e999, "hash": "x", "at": "2026"}')
def test_anchors_from_outside_are_parsed_or_skipped(raw: bytes | str) -> None:
    anchor = parse_anchor(raw)
    if anchor is not None:
        assert type(anchor.seq) is int and anchor.seq > 0
        assert len(anchor.hash) == 64 and anchor.at.tzinfo is not None


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def command_like(draw: st.DrawFn) -> bytes:
    """A command or incident change with fields dropped, retyped or added."""
    base: dict[str, Any] = draw(
        st.sampled_from(
            [
                {"type": "decision", "run_id": "r1", "approved": True, "by": "alice"},
                {"type": "kill_switch", "on": False, "by": "alice"},
                {"change": "opened", "version": 1, "incident_id": "i1", "rule": "r", "kind": "k",
                 "title": "t", "severity": "high", "group": {}, "first_seen": "2026-11-30T00:00:00Z",
                 "last_seen": "2026-11-30T00:00:00Z", "event_count": 1, "events": []},
            ]
        )
    )  # fmt: skip
    doc = dict(base)
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=3)):
        if draw(st.booleans()):
            doc.pop(key, None)
        else:
            doc[key] = draw(JSONISH)
    doc.update(draw(st.dictionaries(st.text(max_size=8), JSONISH, max_size=2)))
    return json.dumps(doc).encode()


@given(st.one_of(command_like(), st.binary(max_size=200)))
def test_commands_and_incident_changes_decode_or_are_refused(raw: bytes) -> None:
    """What the commands and sink stages decode first: a value or a ValidationError (which
    the stages dead-letter with the reason), nothing else."""
    for decode in (COMMAND.validate_json, IncidentChange.model_validate_json):
        with contextlib.suppress(ValidationError):
            decode(raw)
