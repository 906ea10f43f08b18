"""What an attacker with the database owner's rights can do to the audit log."""

from __future__ import annotations

from sqlalchemy import Engine, text


def allow_tampering(db: Engine) -> None:
    """Drop the triggers that refuse UPDATE and DELETE on `audit_log` (SQLite or PostgreSQL)."""
    with db.begin() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
