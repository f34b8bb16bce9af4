"""Revision 0003 on a database that holds people: address keys re-made, look-alikes kept apart,
rows that now share a key reported and kept, older suppressions still in force (SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, column, func, insert, select, table
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.migrate import alembic_config, current_revision, upgrade
from newsletter.models import ConsentEvent, Subscriber
from newsletter.suppressions import suppress, suppressed_since
from tests.support.migrations import empty_engine

# (id, address as stored, key as revision 0002 made it: the whole address case-folded)
PEOPLE = [
    (1, "\ufb01ona@example.org", "fiona@example.org"),
    (2, "Straße@example.org", "strasse@example.org"),
    (3, "JÜRGEN@example.org", "jürgen@example.org"),
    (4, "ada@example.org", "ada@example.org"),
    # One address written two ways: the Unicode row holds the key already and keeps it.
    (5, "a@bücher.de", "a@bücher.de"),
    (6, "a@xn--bcher-kva.de", "a@xn--bcher-kva.de"),
    # Both rows change and meet: the older one takes the key.
    (7, "c@xn--bcher-kva.de", "c@xn--bcher-kva.de"),
    (8, "c@ＢÜCHER.de", "c@ｂücher.de"),
    # 11's new key is 10's old one: only updating in two steps keeps the keys unique.
    (10, "Äda@bücher.de", "äda@bücher.de"),
    (11, "äda@xn--bcher-kva.de", "äda@xn--bcher-kva.de"),
]

NEW_KEYS = {
    1: "\ufb01ona@example.org",
    2: "straße@example.org",
    3: "jÜrgen@example.org",
    4: "ada@example.org",
    5: "a@bücher.de",
    6: "#6 a@bücher.de",
    7: "c@bücher.de",
    8: "#8 c@bücher.de",
    10: "Äda@bücher.de",
    11: "äda@bücher.de",
}

OLD_SUPPRESSIONS = {
    hashlib.sha256(key.encode()).hexdigest(): "erased"
    for key in ("strasse@example.org", "gone@example.org")
}

suppressions_0002 = table(
    "suppressions", column("email_hash"), column("reason"), column("created_at")
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database migrated to 0002 and filled the way 0002's code filled it."""
    with empty_engine(request, tmp_path) as engine:
        _fill(engine)
        yield engine


def _fill(engine: Engine) -> None:
    upgrade(engine, "0002")
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(Subscriber.__table__),
            [
                {
                    "id": id_,
                    "email": email,
                    "email_key": key,
                    "first_name": f"Person {id_}",
                    "last_name": "Example",
                    "status": "active",
                    "token_nonce": f"nonce{id_}",
                    "created_at": now,
                    "updated_at": now,
                }
                for id_, email, key in PEOPLE
            ],
        )
        connection.execute(
            insert(ConsentEvent.__table__),
            [
                {"subscriber_id": id_, "kind": "given", "at": now, "method": "web form"}
                for id_, *_ in PEOPLE
            ],
        )
        connection.execute(
            insert(suppressions_0002),
            [
                {"email_hash": digest, "reason": reason, "created_at": now}
                for digest, reason in OLD_SUPPRESSIONS.items()
            ],
        )


def keys(engine: Engine) -> dict[int, str]:
    with engine.connect() as connection:
        return {
            id_: key for id_, key in connection.execute(select(Subscriber.id, Subscriber.email_key))
        }


def test_upgrade_rekeys_everyone_and_reports_what_it_cannot_decide(
    engine_at_0002: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(engine_at_0002, "0003")

    assert current_revision(engine_at_0002) == "0003"
    assert keys(engine_at_0002) == NEW_KEYS
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        "Warning: subscribers 5 and 6 hold one address written two ways; the address now "
        "finds subscriber 5, and subscriber 6 keeps all it holds under the key '#6 …' (see "
        "both with `newsletter subscribers list --search`).",
        "Warning: subscribers 7 and 8 hold one address written two ways; the address now "
        "finds subscriber 7, and subscriber 8 keeps all it holds under the key '#8 …' (see "
        "both with `newsletter subscribers list --search`).",
    ]
    # Nothing is lost: every row, address, name and consent event is still there.
    with Session(engine_at_0002) as session:
        # Columns of revision 0003 only: later revisions add others to the model.
        stored = {
            row.id: row
            for row in session.execute(
                select(Subscriber.id, Subscriber.email, Subscriber.first_name)
            )
        }
        assert {id_: row.email for id_, row in stored.items()} == {
            id_: email for id_, email, _key in PEOPLE
        }
        assert all(row.first_name == f"Person {row.id}" for row in stored.values())
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == len(PEOPLE)


def test_upgrade_after_a_downgrade_gives_the_same_keys(
    engine_at_0002: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(engine_at_0002)
    capsys.readouterr()
    command.downgrade(alembic_config(engine_at_0002), "0002")
    upgrade(engine_at_0002)
    assert keys(engine_at_0002) == NEW_KEYS


def test_downgrade_goes_back_to_folded_keys_without_joining_anyone(
    engine_at_0002: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(engine_at_0002)
    with Session(engine_at_0002) as session:
        # Kept apart by the new key, one person under the old: the row that already holds the
        # old key keeps it, the other is set aside.
        session.add(
            Subscriber(
                id=12,
                email="strasse@example.org",
                email_key="strasse@example.org",
                first_name="Max",
                last_name="Double",
                status="active",
            )
        )
        session.commit()
    capsys.readouterr()

    command.downgrade(alembic_config(engine_at_0002), "0002")

    assert current_revision(engine_at_0002) == "0002"
    old = keys(engine_at_0002)
    assert old[12] == "strasse@example.org"
    assert old[2] == "#2 strasse@example.org"
    assert old[1] == "fiona@example.org"
    assert "subscribers 12 and 2 hold one address" in capsys.readouterr().err


def test_suppressions_made_before_still_hold_for_every_look_alike(
    engine_at_0002: Engine,
) -> None:
    upgrade(engine_at_0002)

    with Session(engine_at_0002) as session:
        # Suppressed as "strasse@…" folded: both look-alikes stay suppressed, in any case.
        for address in ("straße@example.org", "STRASSE@example.org", "Gone@Example.org"):
            assert suppressed_since(session, address) is not None, address
        assert suppressed_since(session, "here@example.org") is None
        # A suppression made now covers only its own mailbox.
        suppress(session, "jürgen@example.org", "bounced")
        session.commit()
        assert suppressed_since(session, "jürgen@example.org") is not None
        assert suppressed_since(session, "JÜRGEN@example.org") is None
