"""``newsletter digest auto`` as cron runs it: real processes, two at once, ``kill -9`` in the
middle of a send and the next run finishing it; a real SMTP server, both databases."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from newsletter.app_db import get_engine, session_factory
from newsletter.models import DeliveryStatus, Digest, Subscriber
from newsletter.run_lock import run_lock
from tests.sending_support import add_subscribers, address, environment, per_recipient
from tests.sending_support import states as delivery_states
from tests.support.automation import SiteFeed, at, auto, site_feed
from tests.support.smtp import MailServer, SMTPServer
from tests.test_send_cli import wait_for

feed = site_feed
NEWSLETTER = [sys.executable, "-m", "newsletter"]
SLOT = "2027-03-02T09:05:00+00:00"


def ready_slot(make_app: Callable[..., Flask], url: str, feed: SiteFeed, readers: int) -> Flask:
    """``readers`` people, three articles settled before 2 March's slot, nothing sent yet."""
    app = make_app(MAIL_URL=url, FEEDS=str(feed.path), SCHEDULE="daily 09:00")
    with session_factory(app).begin() as session:
        add_subscribers(session, readers)
        session.execute(update(Subscriber).values(received_through=at("2027-03-01 00:00")))
    for guid in ("a1", "a2", "a3"):
        feed.publish(guid, at("2027-03-01 12:00"))
    result = auto(app, "2027-03-01 12:00")  # imports; 1 March's slot had nothing yet
    assert result.exit_code == 0, result.output
    return app


def start_auto(
    base_config: dict[str, Any], server: MailServer, feed: SiteFeed, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*NEWSLETTER, "digest", "auto", "--at", SLOT, *extra],
        env=environment(
            base_config,
            server.url,
            NEWSLETTER_FEEDS=str(feed.path),
            NEWSLETTER_SCHEDULE="daily 09:00",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_runs_at_once_one_works_and_the_other_says_so(
    make_app: Callable[..., Flask],
    base_config: dict[str, Any],
    smtp_server: SMTPServer,
    feed: SiteFeed,
) -> None:
    ready_slot(make_app, smtp_server.url, feed, 200)
    # Slow enough that the first is still sending when the second starts.
    first = start_auto(base_config, smtp_server, feed, "--rate", "40")
    wait_for(lambda: len(smtp_server.received) >= 5 or first.poll() is not None)
    second = start_auto(base_config, smtp_server, feed)
    second_output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, second_output
    assert second_output.strip() == (
        "Another `newsletter digest auto` run is working; leaving it to finish."
    )
    first_output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, first_output
    assert "sent 200, failed 0" in first_output
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(200)})


def test_a_lock_held_in_another_process_is_respected(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    app = ready_slot(make_app, smtp_server.url, feed, 3)
    with run_lock(get_engine(app)) as held:
        assert held
        blocked = auto(app, SLOT)
    assert blocked.exit_code == 0
    assert "Another `newsletter digest auto` run is working" in blocked.output
    assert smtp_server.received == []
    free = auto(app, SLOT)
    assert free.exit_code == 0, free.output
    assert len(smtp_server.received) == 3


def test_kill_9_mid_send_and_the_next_run_finishes_it_once(
    make_app: Callable[..., Flask],
    base_config: dict[str, Any],
    mail_server: MailServer,
    feed: SiteFeed,
) -> None:
    """With PIPELINING, and with CHUNKING too."""
    app = ready_slot(make_app, mail_server.url, feed, 500)
    process = start_auto(base_config, mail_server, feed)
    wait_for(lambda: len(mail_server.received) >= 150 or process.poll() is not None)
    process.kill()
    process.wait(timeout=30)
    assert process.stdout is not None
    process.stdout.close()
    unfinished = len(mail_server.received) < 500

    resumed = start_auto(base_config, mail_server, feed)
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    with session_factory(app)() as session:
        digest_id = session.scalars(select(Digest.id)).one()
    if unfinished:
        assert f"Continuing digest {digest_id}: " in output
    assert "Nothing due until Wednesday 3 March 2027" in output
    states = delivery_states(app, digest_id)
    unknown = {email for email, state in states.items() if state == DeliveryStatus.UNKNOWN}
    assert len(unknown) <= 4
    assert set(states.values()) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    received = per_recipient(mail_server)
    assert max(received.values()) == 1, "somebody got the digest twice"
    assert set(received) | unknown == {address(n) for n in range(500)}
    again = auto(app, SLOT)
    assert "Nothing due" in again.output
    assert max(per_recipient(mail_server).values()) == 1
