"""Incidents' blast radii (assets.blast_store)

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_blast_radius",
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("radius", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    op.create_index("ix_incident_blast_radius_updated_at", "incident_blast_radius", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_incident_blast_radius_updated_at", table_name="incident_blast_radius")
    op.drop_table("incident_blast_radius")
