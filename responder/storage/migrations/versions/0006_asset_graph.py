"""asset graph: nodes and edges, one row per source's claim

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "asset_nodes",
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "id"),
    )
    with op.batch_alter_table("asset_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_nodes_kind"), ["kind"], unique=False)

    op.create_table(
        "asset_edges",
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("src", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("dst", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "src", "kind", "dst"),
    )
    with op.batch_alter_table("asset_edges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_edges_src"), ["src"], unique=False)
        batch_op.create_index(batch_op.f("ix_asset_edges_dst"), ["dst"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("asset_edges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_edges_dst"))
        batch_op.drop_index(batch_op.f("ix_asset_edges_src"))
    op.drop_table("asset_edges")
    with op.batch_alter_table("asset_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_nodes_kind"))
    op.drop_table("asset_nodes")
