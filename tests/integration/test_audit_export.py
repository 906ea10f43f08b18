"""`responder audit keygen|export|verify-export` on SQLite and PostgreSQL: an export from a real
chain verifies offline with the public key, and a record edited in the file does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner, Result

from responder.audit.store import append
from responder.cli import app

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def invoke(env: dict[str, str], *args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def fill(db: Engine) -> None:
    """Six records, one a day from T0."""
    with Session(db) as session:
        for day in range(6):
            append(
                session,
                [("rule:r", "incident.opened", f"inc-{day}", {"day": day})],
                at=T0 + timedelta(days=day),
            )
            session.commit()


def test_keygen_export_and_verify_offline(db: Engine, db_url: str, tmp_path: Path) -> None:
    """An export since a date holds the records from that day on and verifies; an edit fails."""
    fill(db)
    env = {"RESPONDER_DATABASE__URL": db_url}
    key = tmp_path / "audit.pem"
    made = invoke(env, "audit", "keygen", "--out", key)
    assert made.exit_code == 0, made.output
    assert (key.stat().st_mode & 0o777) == 0o600 and Path(f"{key}.pub").is_file()
    assert invoke(env, "audit", "keygen", "--out", key).exit_code == 1  # never overwritten

    export = tmp_path / "audit.jsonl"
    done = invoke(env, "audit", "export", "--since", "2026-11-28", "--sign", key, "--out", export)
    assert done.exit_code == 0, done.output
    lines = export.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines[:-1]] == [4, 5, 6]

    ok = invoke(env, "audit", "verify-export", export, "--pubkey", f"{key}.pub")
    assert ok.exit_code == 0, ok.output
    assert "OK: 3 audit records, chain intact, signed head 6:" in ok.stdout

    record = json.loads(lines[1])
    record["actor"] = "analyst:nobody"
    export.write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")
    bad = invoke(env, "audit", "verify-export", export, "--pubkey", f"{key}.pub")
    assert bad.exit_code == 1
    assert "record 5: its hash does not match its content (edited)" in bad.stdout


def test_export_to_stdout_with_an_encrypted_key(
    db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole chain goes to stdout; an encrypted key is read with its passphrase."""
    fill(db)
    monkeypatch.setenv("AUDIT_KEY_PASSPHRASE", "correct horse")
    env = {"RESPONDER_DATABASE__URL": db_url}
    key = tmp_path / "k.pem"
    opts = ("--passphrase-env", "AUDIT_KEY_PASSPHRASE")
    assert invoke(env, "audit", "keygen", "--out", key, *opts).exit_code == 0
    assert b"ENCRYPTED" in key.read_bytes()
    plain = invoke(env, "audit", "export", "--sign", key)
    assert plain.exit_code == 1 and "private key" in plain.output
    full = invoke(env, "audit", "export", "--sign", key, *opts)
    assert full.exit_code == 0, full.output
    export = tmp_path / "all.jsonl"
    export.write_text(full.stdout)
    assert len(full.stdout.splitlines()) == 7
    ok = invoke(env, "audit", "verify-export", export, "--pubkey", f"{key}.pub")
    assert ok.exit_code == 0, ok.output
