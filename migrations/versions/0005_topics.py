"""Topics, the feed categories they match, articles' categories and subscribers' choices

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", newsletter.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("slug", name=op.f("uq_topics_slug")),
    )
    op.create_table(
        "topic_matches",
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("category_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_topic_matches_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("topic_id", "category_key", name=op.f("pk_topic_matches")),
    )
    with op.batch_alter_table("topic_matches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_topic_matches_category_key"), ["category_key"], unique=False
        )
    op.create_table(
        "article_categories",
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("category_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_article_categories_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", "category_key", name=op.f("pk_article_categories")),
    )
    with op.batch_alter_table("article_categories", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_article_categories_category_key"), ["category_key"], unique=False
        )
    op.create_table(
        "subscriber_topics",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriber_topics_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_subscriber_topics_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "topic_id", name=op.f("pk_subscriber_topics")),
    )
    with op.batch_alter_table("subscriber_topics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscriber_topics_topic_id"), ["topic_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriber_topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_topics_topic_id"))
    op.drop_table("subscriber_topics")
    with op.batch_alter_table("article_categories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_article_categories_category_key"))
    op.drop_table("article_categories")
    with op.batch_alter_table("topic_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topic_matches_category_key"))
    op.drop_table("topic_matches")
    op.drop_table("topics")
