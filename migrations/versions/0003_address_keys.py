"""Address keys that keep look-alike mailboxes apart; older suppressions marked as folded

Keys used to be the whole address case-folded, which joined different mailboxes
(``straße@`` and ``strasse@``, a ligature ``ﬁona@`` and ``fiona@``). Every subscriber is
re-keyed with :func:`newsletter.addresses.email_key`. The new key only ever tells apart what
the old one joined, except that a domain written in its ASCII (``xn--``) form and in Unicode
are now one: two rows that now share a key cannot be decided here (which one is the person?),
so the row already holding the key (else the older one) keeps it, the other keeps everything
it holds under a placeholder key (``#ID address``, which no address can have), and a warning
names both for staff to resolve.

Suppressions hold only a hash of the old key, so they cannot be re-hashed: they are marked
``folded`` and go on covering every address that folds to them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from newsletter.addresses import email_key
from newsletter.models import EMAIL_LENGTH

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("email_key", sa.String()),
)
suppressions = sa.table("suppressions", sa.column("folded", sa.Boolean()))


def placeholder_key(subscriber_id: int, key: str) -> str:
    """A key no address can have (no address holds a space outside quotes, nor starts with
    ``#`` and digits followed by one), unique by the row's id."""
    return f"#{subscriber_id} {key}"[:EMAIL_LENGTH]


def upgrade() -> None:
    op.add_column(
        "suppressions",
        sa.Column("folded", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(suppressions.update().values(folded=True))
    _rekey(op.get_bind(), email_key)


def downgrade() -> None:
    # Back to the whole address case-folded. Rows the new key kept apart that fold together
    # get the same treatment as a collision on the way up: nothing is merged or lost.
    _rekey(op.get_bind(), lambda email: email.strip().casefold())
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_column("folded")


def _rekey(connection: sa.Connection, key_of: Callable[[str], str]) -> None:
    """Give every subscriber the key ``key_of`` makes of their address; where two rows would
    share one, the row that already holds it (else the oldest) takes it and each other one gets
    its placeholder, with a warning."""
    changed: dict[int, str] = {}
    rows = connection.execute(
        sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.email_key).execution_options(
            yield_per=10_000
        )
    )
    for subscriber_id, email, old_key in rows:
        new_key = key_of(email)
        if new_key != old_key:
            changed[subscriber_id] = new_key
    if not changed:
        return
    holders = _unchanged_holders(connection, changed)
    claimants: dict[str, list[int]] = defaultdict(list)
    for subscriber_id in sorted(changed):
        claimants[changed[subscriber_id]].append(subscriber_id)
    final: dict[int, str] = {}
    for key, ids in claimants.items():
        keeper = holders.get(key, ids[0])
        for subscriber_id in ids:
            if subscriber_id == keeper:
                final[subscriber_id] = key
            else:
                final[subscriber_id] = placeholder_key(subscriber_id, key)
                _warn(subscriber_id, keeper)
    statement = (
        subscribers.update()
        .where(subscribers.c.id == sa.bindparam("row_id"))
        .values(email_key=sa.bindparam("new_key"))
    )
    # Placeholders first, then the final keys: one row's new key may be another's old one, and
    # SQLite checks the unique constraint row by row.
    ids = sorted(final)
    interim = [{"row_id": id_, "new_key": placeholder_key(id_, "")} for id_ in ids]
    connection.execute(statement, interim)
    connection.execute(statement, [{"row_id": id_, "new_key": final[id_]} for id_ in ids])


def _unchanged_holders(connection: sa.Connection, changed: dict[int, str]) -> dict[str, int]:
    """Which rows that keep their key already hold one of the keys ``changed`` asks for."""
    wanted = sorted(set(changed.values()))
    holders: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        found = connection.execute(
            sa.select(subscribers.c.email_key, subscribers.c.id).where(
                subscribers.c.email_key.in_(wanted[start : start + 500])
            )
        )
        holders.update({key: id_ for key, id_ in found if id_ not in changed})
    return holders


def _warn(subscriber_id: int, keeper: int) -> None:
    print(
        f"Warning: subscribers {keeper} and {subscriber_id} hold one address written two ways; "
        f"the address now finds subscriber {keeper}, and subscriber {subscriber_id} keeps all "
        f"it holds under the key '#{subscriber_id} …' (see both with "
        "`newsletter subscribers list --search`).",
        file=sys.stderr,
    )
