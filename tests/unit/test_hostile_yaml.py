"""Hostile rule and playbook files: every problem is a quick `file:line: field: message` error.

Alias bombs used to take tens of seconds; recursive aliases, deep nesting, unhashable keys,
merge keys, unknown tags and `.inf` durations ended in tracebacks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.correlation.rules import load_rules
from responder.playbooks.loader import load_playbooks
from responder.text.duration import parse_duration
from responder.yamlfiles import YamlFileError, load_located
from responder.yamlfiles.located import MAX_DEPTH, MAX_FILE_BYTES

RULE = """\
id: sample
title: Sample
match:
  type: a.b
group_by: [resource.id]
window: 5m
incident:
  kind: k
"""
PLAYBOOK = """\
id: notify
title: Notify
on:
  kind: k
steps:
  - id: tell
    action: slack.notify
    with: {text: hello}
    timeout: 30s
"""
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)
HOSTILE = {
    "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB,
    "recursive-alias": "a: &a [*a]\n",
    "alias-to-nothing": "a: *nothing\n",
    "anchor": "id: &x sample\n",
    "merge-key": "base: {x: 1}\nid: x\n<<: {title: t}\n",
    "merge-value": "id: <<\n",
    "sequence-key": "? [a, b]\n: 1\n",
    "mapping-key": "{a: 1}: 2\n",
    "deep-flow": "a: " + "[" * 3000 + "]" * 3000 + "\n",
    "deep-block": "".join("  " * i + "k:\n" for i in range(MAX_DEPTH + 5)),
    "python-tag": "id: !!python/object/apply:os.system [echo hi]\n",
    "unknown-tag": "id: !custom x\n",
    "set-tag": "id: !!set {a, b}\n",
    "bad-binary": "id: !!binary 'not base64!'\n",
    "bad-timestamp": "id: !!timestamp 2026-13-45\n",
    "two-documents": "id: a\n---\nid: b\n",
    "not-utf8": "id: \udcff\n",
    "tabs": "id:\tx\n\tfoo: 1\n",
    "unclosed": "id: [x\n",
}
MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.+)$", re.S)


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


def messages_of(exc: YamlFileError, path: Path) -> list[re.Match[str]]:
    matches = []
    for message in exc.messages:
        found = MESSAGE.match(message)
        assert found is not None, f"not file:line: field: message: {message!r}"
        assert found["file"] == str(path)
        matches.append(found)
    return matches


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("load", [load_rules, load_playbooks], ids=["rules", "playbooks"])
def test_hostile_yaml_is_a_located_error(tmp_path: Path, name: str, load: object) -> None:
    """Each construct is refused with file, line and field, in rules and playbooks (before it
    expands: the loader's limits, not a timer, end it)."""
    path = write(tmp_path, name, HOSTILE[name])
    with pytest.raises(YamlFileError) as raised:
        load(tmp_path)  # type: ignore[operator]
    messages_of(raised.value, path)


@pytest.mark.parametrize(
    ("name", "needle", "line"),
    [
        ("alias-bomb", "anchors (&a) are not allowed", 1),
        ("recursive-alias", "anchors (&a)", 1),
        ("alias-to-nothing", "aliases (*nothing) are not allowed", 1),
        ("merge-key", "merge keys (<<) are not allowed", 3),
        ("merge-value", "merge keys (<<) are not allowed", 1),
        ("sequence-key", "keys must be plain values", 1),
        ("mapping-key", "keys must be plain values", 1),
        ("deep-flow", "nesting depth", 1),
        ("deep-block", f"nested deeper than {MAX_DEPTH} levels", MAX_DEPTH + 1),
        ("python-tag", "python/object/apply:os.system", 1),
        ("unknown-tag", "could not determine a constructor", 1),
        ("set-tag", "tags on lists and mappings", 1),
        ("two-documents", "one YAML document", 2),
    ],
)
def test_refusals_say_what_and_where(tmp_path: Path, name: str, needle: str, line: int) -> None:
    """The message names the construct and its line."""
    path = write(tmp_path, name, HOSTILE[name])
    with pytest.raises(YamlFileError) as raised:
        load_located(path)
    [found] = messages_of(raised.value, path)
    assert needle in found["message"]
    assert int(found["line"]) == line


def test_oversized_and_special_files_are_refused_before_parsing(tmp_path: Path) -> None:
    """Over MAX_FILE_BYTES, or not a regular file: refused without reading it all."""
    big = write(tmp_path, "big", "# x\n" * (MAX_FILE_BYTES // 4 + 1))
    with pytest.raises(YamlFileError, match="larger than"):
        load_located(big)
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(YamlFileError, match="not a regular file"):
        load_located(tmp_path / "dir.yaml")


@pytest.mark.parametrize("window", [".inf", "-.inf", ".nan", "1.0e300", "99999999999999w"])
def test_absurd_durations_are_field_errors(tmp_path: Path, window: str) -> None:
    """`.inf` and friends used to raise OverflowError; now `window` is named at its line."""
    path = write(tmp_path / "rules", "r", RULE.replace("window: 5m", f"window: {window}"))
    with pytest.raises(YamlFileError) as raised:
        load_rules(tmp_path / "rules")
    [found] = messages_of(raised.value, path)
    assert (found["line"], found["field"]) == ("6", "window")
    with pytest.raises(ValueError, match="duration"):
        parse_duration(yaml.safe_load(window))


def test_absurd_step_timeout_is_a_field_error(tmp_path: Path) -> None:
    """Playbook durations share the parser: `.inf` is a located error there too."""
    path = write(tmp_path / "playbooks", "p", PLAYBOOK.replace("timeout: 30s", "timeout: .inf"))
    with pytest.raises(YamlFileError) as raised:
        load_playbooks(tmp_path / "playbooks")
    [found] = messages_of(raised.value, path)
    assert found["line"] == "9" and found["field"].endswith("timeout")


def test_plain_yaml_still_loads_with_lines(tmp_path: Path) -> None:
    """Ordinary files load as before, with the line of every key."""
    path = write(tmp_path, "ok", RULE + "labels: {on: yes}\nlist:\n  - 1\n  - b: 2\n")
    doc = load_located(path)
    assert doc.data["match"] == {"type": "a.b"}
    assert doc.data["labels"] == {True: True}  # YAML 1.1, as PyYAML reads it
    assert doc.lines[("window",)] == 6
    assert doc.lines[("list", 1, "b")] == 12
    write(tmp_path / "rules", "r", RULE)
    assert len(load_rules(tmp_path / "rules")) == 1


# --- bounded fuzzing -----------------------------------------------------------------------------

SNIPPETS = [
    "&a ",
    "*a",
    "<<: ",
    "? ",
    "[",
    "]",
    "{",
    "}",
    "!!python/name:os.system ",
    "!!binary ",
    "!x ",
    ": ",
    "- ",
    "\t",
    "---\n",
    ".inf",
    ".nan",
    "1e999",
    "'",
    '"',
    "\\",
    "#",
    "|\n",
    ">-\n",
    "\n  ",
    "\x00",
    "\u2028",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
]


@st.composite
def mangled(draw: st.DrawFn) -> str:
    """A valid rule or playbook with hostile snippets spliced in at random places."""
    text = draw(st.sampled_from([RULE, PLAYBOOK]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        snippet = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=8)))
        text = text[:at] + snippet + text[at:]
    return text


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mangled())
def test_fuzzed_definitions_load_or_fail_with_located_errors(tmp_path: Path, text: str) -> None:
    """Whatever the text: rules and playbooks either load or raise file:line: field errors."""
    for load in (load_rules, load_playbooks):
        directory = tmp_path / load.__name__
        path = write(directory, "fuzz", text)
        try:
            load(directory)
        except YamlFileError as exc:
            for message in exc.messages:
                assert message.startswith(f"{path}:"), message
                assert re.match(r"^\d+: ", message[len(str(path)) + 1 :]), message


def test_a_key_that_looks_like_a_schema_tag_is_still_named(tmp_path: Path) -> None:
    """Keys with brackets used to be dropped from the field (taken for pydantic union tags)."""
    path = write(tmp_path / "rules", "r", RULE + "'[x]': 1\n")
    with pytest.raises(YamlFileError) as raised:
        load_rules(tmp_path / "rules")
    [found] = messages_of(raised.value, path)
    assert (found["line"], found["field"]) == ("9", "[x]")
