"""Runs count their incident's evidence instead of copying it

A run saw its incident's evidence as its change left it: the sink copied every evidence body
into the run's `events` (~1.5 KB a run row of repeated bodies in `bench/sink.py`). Evidence rows
are only ever appended, so a count says the same: `evidence` is how many of the incident's
evidence rows (positions 0..evidence-1) the run sees, and `events` keeps only the change's
events past the evidence limit (`playbooks.runs.run_events`). Rows stored before this revision
get 0 and keep their copied bodies, which read the same.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "playbook_runs",
        sa.Column("evidence", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # the counted evidence goes back into the runs' own copies before the column goes
    runs = sa.table(
        "playbook_runs",
        sa.column("id", sa.String),
        sa.column("incident_id", sa.String),
        sa.column("evidence", sa.Integer),
        sa.column("events", sa.JSON),
    )
    evidence = sa.table(
        "incident_events",
        sa.column("incident_id", sa.String),
        sa.column("position", sa.Integer),
        sa.column("body", sa.JSON),
    )
    bind = op.get_bind()
    counted = bind.execute(
        sa.select(runs.c.id, runs.c.incident_id, runs.c.evidence, runs.c.events).where(
            runs.c.evidence > 0
        )
    ).all()
    for rid, incident_id, count, events in counted:
        bodies = bind.execute(
            sa.select(evidence.c.body)
            .where(evidence.c.incident_id == incident_id, evidence.c.position < count)
            .order_by(evidence.c.position)
        ).scalars()
        bind.execute(
            runs.update()
            .where(runs.c.id == rid)
            .values(events=[*bodies, *(events if isinstance(events, list) else [])])
        )
    # (ALTER TABLE ... DROP COLUMN, SQLite 3.35+ too: rebuilding the table would drop the one
    # playbook_steps refers to, which SQLite's foreign keys refuse)
    with op.batch_alter_table("playbook_runs", recreate="never") as batch:
        batch.drop_column("evidence")
