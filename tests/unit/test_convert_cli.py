"""`responder convert`: JSONL that `responder replay --strict` accepts, a summary on stderr."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from responder.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
REPORTS = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix not in (".md", ".sh"))
CONTEXT = ("--asset", "fraud-scorer", "--time", "2026-11-25T09:00:00Z", "--label", "env=prod")

runner = CliRunner()


def invoke(*args: str | Path, stdin: bytes | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=stdin)


@pytest.mark.parametrize("report", REPORTS, ids=[str(p.relative_to(FIXTURES)) for p in REPORTS])
def test_convert_output_replays_strictly(report: Path, tmp_path: Path) -> None:
    """Every fixture converts to events that `replay --strict` accepts, one per line."""
    result = invoke("convert", report, *CONTEXT)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert all(orjson.loads(line)["labels"]["env"] == "prod" for line in lines)
    events = tmp_path / "events.jsonl"
    events.write_text(result.stdout)
    replayed = invoke("replay", events, "--strict", "--json")
    assert replayed.exit_code == 0, replayed.stderr
    assert f"events read: {len(lines)}, rejected: 0" in replayed.stderr


def test_every_format_has_fixtures_that_replay_strictly() -> None:
    """The test above covers every accepted format: each has a directory of fixtures, and
    `--format auto` recognises each fixture as the format of its directory."""
    from responder.events.normalize import FORMATS

    assert {p.parent.name for p in REPORTS} >= set(FORMATS)
    for report in REPORTS:
        result = invoke("convert", report, *CONTEXT)
        summary = f"\n{report.parent.name}: events: "
        assert summary in "\n" + result.stderr, (report, result.stderr[-300:])


def test_convert_summary_counts_types_rejections_and_skips() -> None:
    """stderr names the format, counts per type, and each rejection with where and why."""
    result = invoke("convert", FIXTURES / "ocsf" / "ocsf.json")
    assert result.exit_code == 0
    assert (
        "ocsf: events: 4 (auth.login_failed: 1, key.used: 1, threat.detected: 1, " in result.stderr
    )
    assert "record 5: rejected: OCSF class 4001 is not converted" in result.stderr
    assert "rejected: 1, skipped: 0" in result.stderr
    strict = invoke("convert", FIXTURES / "ocsf" / "ocsf.json", "--strict")
    assert strict.exit_code == 2


def test_convert_without_a_time_rejects_and_exits_1() -> None:
    """A report without times, converted without --time: every finding rejected, exit 1."""
    result = invoke("convert", FIXTURES / "pip-audit" / "pip-audit.json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "rejected: no time" in result.stderr and "--time" in result.stderr


def test_convert_names_the_format_or_refuses_a_wrong_one() -> None:
    """--format picks the converter; an unknown name or undetectable report is an error."""
    named = invoke("convert", FIXTURES / "gitleaks" / "gitleaks.json", "--format", "gitleaks")
    assert named.exit_code == 0 and len(named.stdout.splitlines()) == 3
    wrong = invoke("convert", FIXTURES / "gitleaks" / "gitleaks.json", "--format", "gitleek")
    assert wrong.exit_code == 1 and "unknown format 'gitleek'" in wrong.stderr
    unknown = invoke("convert", "-", stdin=b"just text\n")
    assert unknown.exit_code == 1 and "unknown report format" in unknown.stderr


def test_convert_reads_stdin() -> None:
    """`-` reads the report from stdin (spooled, so two-pass formats still work)."""
    raw = (FIXTURES / "grype" / "grype.json").read_bytes()
    result = invoke("convert", "-", stdin=raw)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--label", "env"), "expected KEY=VALUE"),
        (("--time", "2026-11-25T09:00:00"), "RFC 3339 time with offset"),
    ],
)
def test_convert_refuses_bad_options(option: tuple[str, str], message: str) -> None:
    """Malformed labels and naive times are refused before anything is read."""
    result = invoke("convert", FIXTURES / "trivy" / "trivy.scan1.json", *option)
    assert result.exit_code == 1 and message in result.stderr


def test_secret_values_are_not_printed_anywhere() -> None:
    """Neither stdout nor stderr of a gitleaks conversion carries a secret value."""
    result = invoke("convert", FIXTURES / "gitleaks" / "gitleaks.json")
    for secret in (
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ):
        assert secret not in result.stdout and secret not in result.stderr


def test_send_refuses_a_report_over_the_message_limit(tmp_path: Path) -> None:
    """A report too large for one Kafka message is refused before any connection, with the way out."""
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (6 * 1024 * 1024))
    result = invoke("send", big, "--format", "trivy")
    assert result.exit_code == 1
    assert "message limit" in result.stderr and "responder convert" in result.stderr
