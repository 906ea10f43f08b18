"""API tokens on SQLite and PostgreSQL: shown once, stored as digests, revocable, audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel, col, select
from typer.testing import CliRunner

from responder.audit.store import AuditRecord, verify_chain
from responder.cli import app
from responder.service import tokens
from responder.service.errors import Conflict, Invalid, NotFound
from responder.service.identity import Role

pytestmark = pytest.mark.integration


def test_migrations_create_exactly_the_declared_tables(db: Engine) -> None:
    """Alembic finds nothing to add: migration 0006 matches the ApiToken model."""
    with db.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


def test_cli_creates_lists_and_revokes_a_token(
    db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret is printed alone on the last line, never stored, and stops working once revoked."""
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    cli = CliRunner()
    made = cli.invoke(
        app, ["tokens", "create", "--name", "alice-laptop", "--role", "analyst", "--by", "root"]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert tokens.SHAPE.match(secret)
    with db.connect() as conn:
        stored = conn.execute(text("SELECT * FROM api_tokens")).mappings().one()
    assert secret not in json.dumps(dict(stored), default=str)
    assert stored["digest"] == tokens.digest(secret)
    with Session(db) as session:
        principal = tokens.authenticate(session, secret)
    assert principal is not None
    assert (principal.name, principal.role, principal.by) == (
        "alice-laptop",
        Role.analyst,
        "token:alice-laptop",
    )

    listed = cli.invoke(app, ["tokens", "list", "--json"])
    assert listed.exit_code == 0 and secret not in listed.stdout
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["alice-laptop"]

    again = cli.invoke(app, ["tokens", "create", "--name", "alice-laptop", "--role", "viewer"])
    assert again.exit_code == 1 and "never reused" in again.output
    bad_role = cli.invoke(app, ["tokens", "create", "--name", "x", "--role", "root"])
    assert bad_role.exit_code == 2

    revoked = cli.invoke(app, ["tokens", "revoke", "alice-laptop", "--by", "root"])
    assert revoked.exit_code == 0, revoked.output
    with Session(db) as session:
        assert tokens.authenticate(session, secret) is None
        records = session.exec(
            select(AuditRecord).where(col(AuditRecord.subject) == "token:alice-laptop")
        ).all()
        assert [(r.actor, r.action) for r in records] == [
            ("analyst:root", "token.created"),
            ("analyst:root", "token.revoked"),
        ]
        assert verify_chain(session)[1] is None
    assert cli.invoke(app, ["tokens", "list"]).stdout.count("alice-laptop") == 0
    assert "alice-laptop" in cli.invoke(app, ["tokens", "list", "--all"]).stdout
    twice = cli.invoke(app, ["tokens", "revoke", "alice-laptop"])
    assert twice.exit_code == 1 and "already revoked" in twice.output


def test_only_well_formed_live_tokens_authenticate(db: Engine) -> None:
    """Malformed, unknown, expired and revoked tokens give no principal."""
    with Session(db) as session, session.begin():
        _, live = tokens.issue(session, name="ci", role="ingest", actor="system")
        _, old = tokens.issue(
            session, name="old", role="viewer", actor="system", ttl=timedelta(seconds=1)
        )
        session.execute(text("UPDATE api_tokens SET expires_at = created_at WHERE name = 'old'"))
    with Session(db) as session:
        assert tokens.authenticate(session, live) is not None
        assert tokens.authenticate(session, old) is None
        for presented in ("", "rsp_", live[:-1], live + "x", live.upper(), "Bearer " + live):
            assert tokens.authenticate(session, presented) is None
        assert tokens.authenticate(session, "rsp_" + "A" * 43) is None


def test_issue_validates_names_and_roles(db: Engine) -> None:
    """Names are short and plain; roles are the five known ones."""
    with Session(db) as session:
        for name in ("", "-x", "a b", "x" * 65, "token:x", "ünï"):
            with pytest.raises(Invalid):
                tokens.issue(session, name=name, role="viewer", actor="system")
        with pytest.raises(Invalid):
            tokens.issue(session, name="ok", role="superuser", actor="system")
        with pytest.raises(NotFound):
            tokens.revoke(session, "nobody", actor="system")
        tokens.issue(session, name="ok", role="viewer", actor="system")
        with pytest.raises(Conflict):
            tokens.issue(session, name="ok", role="admin", actor="system")
