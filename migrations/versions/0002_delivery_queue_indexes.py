"""Indexes for claiming deliveries of large digests in id order and renewing leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_claim")
        batch_op.create_index(
            "ix_deliveries_digest_queue", ["digest_id", "status", "id"], unique=False
        )
        batch_op.create_index("ix_deliveries_kind_queue", ["kind", "status", "id"], unique=False)
        batch_op.create_index(
            "ix_deliveries_claimed_by",
            ["claimed_by"],
            unique=False,
            sqlite_where=sa.text("claimed_by IS NOT NULL"),
            postgresql_where=sa.text("claimed_by IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_claimed_by")
        batch_op.drop_index("ix_deliveries_kind_queue")
        batch_op.drop_index("ix_deliveries_digest_queue")
        batch_op.create_index(
            "ix_deliveries_claim", ["status", "digest_id", "next_attempt_at"], unique=False
        )
