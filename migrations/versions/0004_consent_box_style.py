"""The style of signup box a consent was given in

``consent_events.box_style`` records how the form reached the person: ``page`` (our own
signup page), or a box on the organisation's own pages: ``html`` (the plain form),
``script`` (the same form sent by ``/embed.js``) or ``iframe`` (``/embed`` in a frame).
Events recorded before are left without one (NULL): nobody knows any more.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consent_events", sa.Column("box_style", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_column("box_style")
