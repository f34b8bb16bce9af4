"""Bounce and complaint reports, one row per report and person

Each report that came back (from the bounce mailbox or a provider's webhook) is kept: who,
which delivery, when, its kind (hard, soft, complaint), the provider's reason and the raw
report's Message-ID, unique per person so that a report read twice acts once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("report_id", sa.String(255), nullable=False),
        sa.Column("at", newsletter.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_bounce_reports_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_bounce_reports_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_reports")),
        sa.UniqueConstraint("report_id", "subscriber_id", name="uq_bounce_reports_report"),
    )
    op.create_index("ix_bounce_reports_subscriber_at", "bounce_reports", ["subscriber_id", "at"])
    op.create_index(op.f("ix_bounce_reports_delivery_id"), "bounce_reports", ["delivery_id"])
    op.create_index(op.f("ix_bounce_reports_at"), "bounce_reports", ["at"])


def downgrade() -> None:
    op.drop_table("bounce_reports")
