"""Incident rows keep room on their page for their next version (PostgreSQL)

The sink rewrites an incident's row with every batch that changes it. With full pages (the
default fillfactor, 100) each new version went to another page, and each of the table's six
indexes got an entry for it; with room left on the page, PostgreSQL writes a heap-only tuple
and touches no index (HOT). `bench/sink.py` on the local PostgreSQL: the sink's UPDATE of
incidents took 287 ms at 70 against 361 and 407 ms at 100 for the same 9,344 rows. Existing pages
keep their fill; new and rewritten ones leave the room. SQLite has no such setting.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INCIDENTS_FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE incidents SET (fillfactor = {INCIDENTS_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE incidents RESET (fillfactor)")
