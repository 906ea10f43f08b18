"""incidents: when first acknowledged and when closed (SLA clocks); dashboard sessions

Existing incidents that are no longer open get their last update as both times (the best
estimate the table holds).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE incidents SET acknowledged_at = updated_at WHERE status <> 'open'")
    op.execute(
        "UPDATE incidents SET resolved_at = updated_at "
        "WHERE status IN ('resolved', 'false_positive')"
    )
    op.create_table(
        "web_sessions",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("csrf", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"]),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_web_sessions_token_id", "web_sessions", ["token_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_web_sessions_token_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("acknowledged_at")
