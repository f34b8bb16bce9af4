"""The topics a signup offered and the ones chosen, as part of its consent

``consent_events.choices`` holds, as JSON, the question the form asked ("What would you like
to hear about?"), the names of the topics it offered and the slugs of those chosen. Events
recorded before, and events of a form that offered no topic, have none (NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("consent_events", sa.Column("choices", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_column("choices")
