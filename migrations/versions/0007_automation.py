"""Automatic digests: when articles became available, each reader's rhythm and watermark, the
slots of the schedule dealt with, and each message's window of articles

``articles.available_at`` is when an article had settled and became available to automatic
digests. ``subscribers.rhythm`` is how often the person wants digests (NULL: the site's
default), ``received_through`` their watermark (every article available up to it was theirs to
receive) and ``last_digest_slot`` the slot of their last automatic digest. ``digest_slots``
records each schedule slot ``digest auto`` dealt with. ``deliveries.window_start`` and
``window_end`` fix which articles an automatic digest or a welcome holds.

Existing articles count as available since their last change and existing subscribers as
having received everything up to the upgrade, so turning automation on mails nothing old.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-13
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import newsletter.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = newsletter.db.UTCDateTime(timezone=True)
    with op.batch_alter_table("articles", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("available_at", when, nullable=True))
        batch_op.create_index(batch_op.f("ix_articles_available_at"), ["available_at"])
    with op.batch_alter_table("subscribers", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("rhythm", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("received_through", when, nullable=True))
        batch_op.add_column(sa.Column("last_digest_slot", when, nullable=True))
    with op.batch_alter_table("deliveries", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("window_start", when, nullable=True))
        batch_op.add_column(sa.Column("window_end", when, nullable=True))
    op.create_table(
        "digest_slots",
        sa.Column("slot_at", when, nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("handled_at", when, nullable=False),
        sa.Column("readers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digests.id"],
            name=op.f("fk_digest_slots_digest_id_digests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("slot_at", name=op.f("pk_digest_slots")),
    )
    articles = sa.table("articles", sa.column("available_at", when), sa.column("updated_at", when))
    op.execute(sa.update(articles).values(available_at=articles.c.updated_at))
    subscribers = sa.table("subscribers", sa.column("received_through", when))
    op.execute(sa.update(subscribers).values(received_through=datetime.now(UTC)))


def downgrade() -> None:
    op.drop_table("digest_slots")
    # Columns are dropped in place (SQLite 3.35 and later can): a batch copy would drop and
    # re-create the tables, and with foreign keys on, dropping ``subscribers`` or
    # ``articles`` deletes every row that cascades from them (consent, topics, categories).
    with op.batch_alter_table("deliveries", recreate="never") as batch_op:
        batch_op.drop_column("window_end")
        batch_op.drop_column("window_start")
    with op.batch_alter_table("subscribers", recreate="never") as batch_op:
        batch_op.drop_column("last_digest_slot")
        batch_op.drop_column("received_through")
        batch_op.drop_column("rhythm")
    with op.batch_alter_table("articles", recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_articles_available_at"))
        batch_op.drop_column("available_at")
