"""Approval policies and votes on runs and steps; Slack interactions seen (replay guard)

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("playbook_runs") as batch:
        batch.add_column(sa.Column("approval", sa.JSON(), nullable=True))
    with op.batch_alter_table("playbook_steps") as batch:
        batch.add_column(sa.Column("approval", sa.JSON(), nullable=True))
    op.create_table(
        "slack_seen",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_slack_seen_seen_at", "slack_seen", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_slack_seen_seen_at", table_name="slack_seen")
    op.drop_table("slack_seen")
    with op.batch_alter_table("playbook_steps") as batch:
        batch.drop_column("approval")
    with op.batch_alter_table("playbook_runs") as batch:
        batch.drop_column("approval")
