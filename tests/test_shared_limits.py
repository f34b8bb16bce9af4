"""The limits hold across web instances: two gunicorn processes (one worker each, so nothing
is shared in memory) with ``NEWSLETTER_RATELIMIT_STORAGE_URI`` pointing at a real Redis
share the count of signups per client; the count of confirmation emails per address lives
in the database, which both use. The posts are cross-site ones from a box on the
organisation's pages, which the limits protect in place of a cookie-bound token."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask

from newsletter.models import Subscriber
from tests.sending_support import environment
from tests.support.gunicorn import Gunicorn, running_gunicorn
from tests.support.records import count, deliveries, events, subscriber

SITE = "https://www.example.org"


def post_box(server: Gunicorn, client: str, email: str) -> int:
    """A signup from the box on the site, by the client at ``client`` (behind one proxy)."""
    body = urlencode(
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "consent": "y",
            "box_style": "html",
        }
    )
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/subscribe",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": SITE,
                "X-Forwarded-For": client,
            },
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


@contextmanager
def two_instances(env: dict[str, str], folder: Path) -> Iterator[list[Gunicorn]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running_gunicorn(env, folder / f"gunicorn-{number}.log", workers=1, threads=1)
            )
            for number in (1, 2)
        ]


def settings(base_config: dict[str, Any], storage: str) -> dict[str, str]:
    return environment(
        base_config,
        f"maildir://{Path(base_config['INSTANCE_PATH']).parent / 'outbox'}",
        NEWSLETTER_EMBED_ORIGINS=SITE,
        NEWSLETTER_TRUSTED_PROXIES="1",
        NEWSLETTER_SIGNUP_RATE_LIMIT="3 per minute",
        NEWSLETTER_CONFIRMATIONS_PER_DAY="2",
        NEWSLETTER_SIGNUP_MIN_SECONDS="0",
        NEWSLETTER_RATELIMIT_STORAGE_URI=storage,
    )


def test_two_instances_share_the_counts_per_client_and_per_address(
    app: Flask, base_config: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    with two_instances(settings(base_config, redis_url), tmp_path) as (one, two):
        # Per client: three signups, whichever instance takes them, then no more.
        first_client = [
            post_box(server, "198.51.100.1", f"person{n}@example.org")
            for n, server in enumerate([one, two, one])
        ]
        assert first_client == [303, 303, 303]
        assert post_box(two, "198.51.100.1", "person3@example.org") == 429
        assert post_box(one, "198.51.100.1", "person4@example.org") == 429
        # Another client has its own count.
        assert post_box(two, "198.51.100.2", "person5@example.org") == 303

        # Per address: two confirmation emails a day, whichever instance and client.
        for number, server in enumerate([one, two, one, two]):
            assert post_box(server, f"203.0.113.{number + 1}", "ada@example.org") == 303

    assert count(app, Subscriber) == 5
    ada = subscriber(app, "ada@example.org")
    assert ada is not None
    # Every signup of the address is recorded as consent; only two emails went out.
    assert len([event for event in events(app) if event.subscriber_id == ada.id]) == 4
    assert len([delivery for delivery in deliveries(app) if delivery.subscriber_id == ada.id]) == 2


def test_without_redis_each_instance_counts_alone(
    app: Flask, base_config: dict[str, Any], tmp_path: Path
) -> None:
    """What the shared storage is for: in memory, a client gets its allowance from each."""
    with two_instances(settings(base_config, "memory://"), tmp_path) as (one, two):
        statuses = [
            post_box(server, "198.51.100.1", f"person{n}@example.org")
            for n, server in enumerate([one, one, one, two, two, two])
        ]
        assert statuses == [303] * 6
        assert post_box(one, "198.51.100.1", "person6@example.org") == 429
    assert count(app, Subscriber) == 6
