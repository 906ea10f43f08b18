"""Event text on the terminal: markup is shown as text, escape sequences never reach it.

An incident whose title, group and evidence carry rich markup, ANSI/OSC escape sequences and
bidi overrides is stored in SQLite; every view of it (`incidents list/show`, `runs list/show`,
the replay table) must exit 0 and print the text literally, without the control characters.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner, Result

from responder.cli import app
from responder.incidents.model import IncidentChange
from responder.incidents.store import apply_changes
from responder.playbooks.runs import PlaybookRun, StepRun
from responder.security.terminal import plain, safe, text
from responder.storage.database import make_engine, upgrade

MARKUP = "[/oops]"
LINK = "[link=https://evil.example]click[/link]"
ANSI = "\x1b[31mred\x1b[0m"
OSC8 = "\x1b]8;;https://evil.example\x07hyperlink\x1b]8;;\x07"
BIDI = "\u202etxt.exe"
HOSTILE = f"{MARKUP} {LINK} {ANSI} {OSC8} {BIDI}"
RAW_CONTROLS = ("\x1b", "\x07", "\u202e", "\x9b")
INC = "7f1c2d3e-0000-5000-8000-000000000001"
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def hostile_event() -> dict[str, object]:
    return {
        "id": "ev-[/oops]",
        "source": f"scanner {LINK}",
        "type": "secret.leaked",
        "time": "2026-11-25T09:00:00Z",
        "severity": "high",
        "title": f"{MARKUP} {LINK}",
        "resource": {"kind": "api_key", "id": MARKUP},
        "attributes": {"note": ANSI},
        "labels": {},
        "schema_version": "1",
    }


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> CliRunner:
    url = f"sqlite:///{tmp_path / 'responder.db'}"
    engine = make_engine(url)
    upgrade(engine)
    change = IncidentChange(
        change="opened",
        version=1,
        incident_id=INC,
        rule=f"rule {MARKUP}",
        kind=f"kind {ANSI}",
        title=f"Leaked key {HOSTILE} used",
        severity="critical",
        group={"resource.id": HOSTILE},
        first_seen=T0,
        last_seen=T0,
        event_count=1,
        events=[hostile_event()],
    )
    with Session(engine) as session, session.begin():
        apply_changes(session, [change])
        session.add(
            PlaybookRun(
                id="0d830f00-aaaa-5000-8000-000000000001",
                playbook_id=f"contain {MARKUP}",
                incident_id=INC,
                trigger="opened",
                incident_version=1,
                mode="automatic",
                status="failed",
                incident={"title": f"Leaked key {HOSTILE}"},
                error=f"step failed: {HOSTILE}",
                created_at=T0,
                updated_at=T0,
            )
        )
        session.flush()
        session.add(
            StepRun(
                run_id="0d830f00-aaaa-5000-8000-000000000001",
                step_id="notify",
                position=0,
                action="slack.notify",
                status="waiting_approval",
                params={"text": HOSTILE},
                output={"echo": HOSTILE},
                decision=None,
            )
        )
    engine.dispose()
    monkeypatch.setenv("RESPONDER_DATABASE__URL", url)
    monkeypatch.delenv("RESPONDER_LOG_FORMAT", raising=False)
    monkeypatch.setenv("RESPONDER_LOG_LEVEL", "WARNING")
    return CliRunner()


def shown(result: Result) -> str:
    assert result.exit_code == 0, result.output
    for control in RAW_CONTROLS:
        assert control not in result.output, f"raw {control!r} reached the terminal"
    return result.output


@pytest.mark.parametrize(
    "args",
    [
        ["incidents", "list"],
        ["incidents", "show", INC[:8]],
        ["runs", "list"],
        ["runs", "show", "0d830f00"],
    ],
    ids=" ".join,
)
def test_views_show_markup_as_text_and_drop_escape_sequences(
    cli: CliRunner, args: list[str]
) -> None:
    """`[/oops]` used to make these exit 1; `[link=...]` rendered a link; ANSI went through."""
    output = shown(cli.invoke(app, args))
    assert MARKUP in output
    if args != ["runs", "list"]:  # its table has no title column
        assert "[link=" in output


@pytest.mark.parametrize(
    "args", [["incidents", "list", "--json"], ["incidents", "show", INC, "--json"]]
)
def test_json_views_escape_control_characters(cli: CliRunner, args: list[str]) -> None:
    """JSON output is ASCII-only, so it is still the data but cannot drive the terminal."""
    output = shown(cli.invoke(app, args))
    assert "\\u001b" in output and "\\u202e" in output
    assert output.isascii()


def test_replay_table_and_rejections_are_safe(tmp_path: Path) -> None:
    """The replay table prints rule titles built from event values literally; rejected lines
    naming an attacker's key do not carry its escape sequence to stderr."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "leak.yaml").write_text(
        "id: leak\ntitle: Leak\nmatch:\n  type: secret.leaked\ngroup_by: [resource.id]\n"
        "window: 1h\nincident:\n  kind: leak\n  title: \"Leak of {{ group['resource.id'] }}\"\n"
    )
    event = hostile_event()
    event["resource"] = {"kind": "api_key", "id": f"{MARKUP} {LINK}"}
    bad = {**hostile_event(), f"x{ANSI}": 1}
    lines = tmp_path / "events.jsonl"
    lines.write_text(json.dumps(event) + "\n" + json.dumps(bad) + "\n")
    result = CliRunner().invoke(app, ["replay", str(lines), "--rules", str(rules)])
    output = shown(result)
    assert MARKUP in output and "[link=" in output
    assert "\x1b" not in result.stderr
    assert ":2: rejected:" in result.stderr


def test_helpers_strip_controls_and_escape_markup() -> None:
    """`plain` drops C0/C1/bidi controls (line breaks become spaces), `safe` escapes markup,
    `text` is never parsed."""
    assert plain("a\x1b[31mb\x9bc\u202ed\ne\tf\u2028g") == "a[31mbcd e f g"
    assert plain(42) == "42"
    assert plain("one\ntwo\x1b[2J", lines=True) == "one\ntwo[2J"
    assert safe("[/oops] [bold]x") == "\\[/oops] \\[bold]x"
    assert safe("ends with \\") == "ends with \\\\"
    assert text("[bold]x[/bold] :warning:").plain == "[bold]x[/bold] :warning:"
    assert text("x", "red").style == "red"


def test_definition_errors_quoting_hostile_values_are_printed_safely(tmp_path: Path) -> None:
    """A rule value with markup and an OSC escape, quoted in the error: `replay` used to crash
    on the markup, and both commands sent the escape sequence to the terminal."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "id: x\ntitle: t\nmatch: {type: a.b}\ngroup_by: [resource.id]\n"
        'window: "[/oops] \\e]0;pwned\\a"\nincident: {kind: k}\n'
    )
    lines = tmp_path / "events.jsonl"
    lines.write_text("{}\n")
    for args in (["replay", str(lines), "--rules", str(rules)], ["rules", "validate", str(rules)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "r.yaml:5: window:" in result.stderr
        assert "[/oops]" in result.stderr
        assert "\x1b" not in result.stderr and "\x07" not in result.stderr
