"""The rules' `re` modifier runs in linear time (RE2) on bounded values; patterns RE2 cannot run
are refused when the rule loads, with file:line and RE2's reason (issue 8, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from responder.cli import app
from responder.correlation.match import Condition
from responder.security.patterns import (
    MAX_MATCH_CHARS,
    MAX_PATTERN_CHARS,
    PatternError,
    compile_linear,
    search,
)

RULE = """\
id: evil
title: Evil pattern
match:
  type: model.loaded
  resource.id|re: '{pattern}'
group_by: [resource.id]
window: 10m
incident:
  kind: model_tampering
"""


def event(resource_id: str) -> dict[str, object]:
    return {"type": "model.loaded", "resource": {"id": resource_id, "kind": "model"}}


def test_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    """`^(a+)+$` against 'a' * 64 + '!' takes 2**64 steps in Python's `re`; RE2 answers at once."""
    condition = Condition.parse("resource.id|re", r"^(a+)+$")
    assert not condition.holds(event("a" * 64 + "!"))
    assert condition.holds(event("a" * 64))


def test_the_issue_pattern_on_a_640_kb_field() -> None:
    condition = Condition.parse("resource.id|re", r".*\.pkl$")
    assert not condition.holds(event("x" * 640_000 + "\n"))
    assert condition.holds(event("models/" + "x" * 1000 + ".pkl"))


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),  # backreference
        (r"foo(?=bar)", "invalid perl operator"),  # lookahead
        (r"(?<!x)y", "invalid perl operator"),  # lookbehind
        (r"a*+", "bad repetition operator"),  # possessive
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match="linear-time engine") as caught:
        Condition.parse("resource.id|re", pattern)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_overlong_pattern_refused() -> None:
    with pytest.raises(PatternError, match="limit"):
        compile_linear("a" * (MAX_PATTERN_CHARS + 1))


def test_values_are_matched_on_their_first_max_match_chars() -> None:
    head = "x" * MAX_MATCH_CHARS
    assert search("x$", head)  # within the bound: the end is seen
    assert not search("needle", head + "needle")  # past the bound: not seen
    assert search("^x+", head + "needle")


def test_rules_validate_reports_an_re2_refusal_at_its_line(tmp_path: Path) -> None:
    rule = tmp_path / "evil.yaml"
    rule.write_text(RULE.format(pattern=r"(\w+)\1"))
    result = CliRunner().invoke(app, ["rules", "validate", str(tmp_path)])
    assert result.exit_code == 1
    errors = " ".join(result.stderr.split())
    assert f"{rule}:5: match.resource.id|re: " in errors
    assert "not supported by the linear-time engine (RE2)" in errors
    assert "invalid escape sequence" in errors


def test_rules_validate_accepts_what_re2_runs(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(RULE.format(pattern=r".*\.(pkl|pt|bin)$"))
    result = CliRunner().invoke(app, ["rules", "validate", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_playbook_triggers_use_the_same_engine() -> None:
    """Playbook `on:` conditions compile through `Condition` too: same refusal, same engine."""
    from responder.playbooks.trigger import compile_condition

    with pytest.raises(ValueError, match="linear-time engine"):
        compile_condition("title|re", r"(x)\1")
    assert compile_condition("title|re", r"^(a+)+$").condition.values == (r"^(a+)+$",)
