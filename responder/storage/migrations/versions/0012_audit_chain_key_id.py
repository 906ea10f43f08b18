"""audit_log.key_id: which chain key (HMAC) hashed a record; NULL for legacy unkeyed records

Revision ID: 0012
Revises: 0011

A plain ADD COLUMN (no table rebuild), so the append-only triggers on audit_log stay in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "key_id")
