"""A burst of signups and one-click unsubscribes against a real gunicorn while a digest goes
out: nothing fails, nothing is lost or stored twice, and the send accounts for everyone.

Both databases; everything runs in real processes on 127.0.0.1 (gunicorn, ``newsletter
digest send``, an aiosmtpd server), and the clients are plain threads with ``http.client``.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask
from sqlalchemy import func, select

from newsletter.app_db import session_factory
from newsletter.links import unsubscribe_url
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.people import Person
from newsletter.runtime import get_runtime
from tests.sending_support import add_articles_and_digest, add_subscribers, address, environment
from tests.support.gunicorn import Gunicorn, running_gunicorn
from tests.support.smtp import SMTPServer

RECIPIENTS = 2000
SIGNUPS = 50
UNSUBSCRIBES = 50
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TIMEOUT = 30


def signup_address(number: int) -> str:
    return f"visitor{number:03d}@example.net"


def _cookie(response: http.client.HTTPResponse) -> str:
    cookies = [value.split(";", 1)[0] for value in response.headers.get_all("Set-Cookie") or []]
    assert cookies, "the form page set no session cookie"
    return "; ".join(cookies)


def sign_up(server: Gunicorn, number: int, go: threading.Barrier) -> list[int]:
    """GET the form like a browser, wait for everyone, then POST it; the statuses seen."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/subscribe")
        page = connection.getresponse()
        html = page.read().decode()
        match = CSRF.search(html)
        assert match, f"no CSRF token on the form ({page.status})"
        cookie = _cookie(page)
        body = urlencode(
            {
                "csrf_token": match.group(1),
                "first_name": "Grace",
                "last_name": f"Hopper {number}",
                "email": signup_address(number),
                "consent": "y",
            }
        )
        go.wait()
        connection.request(
            "POST",
            "/subscribe",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": cookie,
                "Referer": f"http://{server.host}:{server.port}/subscribe",
            },
        )
        answer = connection.getresponse()
        answer.read()
        return [page.status, answer.status]
    finally:
        connection.close()


def one_click(server: Gunicorn, path: str, go: threading.Barrier) -> list[int]:
    """What a mailbox provider sends: a bare POST, no cookie, no token but the URL's."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    try:
        go.wait()
        connection.request(
            "POST",
            path,
            body="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = connection.getresponse()
        answer.read()
        return [answer.status]
    finally:
        connection.close()


def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    event = threading.Event()
    waited = 0.0
    while not condition():
        assert waited < timeout, "timed out"
        event.wait(0.02)
        waited += 0.02


def test_signups_and_unsubscribes_during_a_send(
    make_app: Callable[..., Flask],
    base_config: dict[str, Any],
    smtp_server: SMTPServer,
    tmp_path: Path,
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    with session_factory(app).begin() as session:
        add_subscribers(session, RECIPIENTS)
        digest_id = add_articles_and_digest(session)
    leaving = [address(n) for n in range(RECIPIENTS // UNSUBSCRIBES - 1, RECIPIENTS, 40)]
    assert len(leaving) == UNSUBSCRIBES
    site = get_runtime(app).site
    with session_factory(app)() as session:
        people = session.scalars(select(Subscriber).where(Subscriber.email.in_(leaving))).all()
        # The links the digest carries, pointed at the local server instead of BASE_URL.
        paths = [urlsplit(unsubscribe_url(site, Person.of(person))).path for person in people]

    env = environment(
        base_config,
        smtp_server.url,
        NEWSLETTER_SIGNUP_RATE_LIMIT="100000 per minute",
        NEWSLETTER_SIGNUP_MIN_SECONDS="0",
    )
    # gthread workers, though docs/deploy.md recommends sync ones for speed: here the point
    # is correctness under the hardest interleaving. Each worker serves 4 requests at once, so
    # requests of one process share its connection pool and race each other, the other
    # worker, the mail threads and the send for the same rows and (on SQLite) the write lock;
    # a sync worker would run one request at a time.
    with running_gunicorn(env, tmp_path / "gunicorn.log", workers=2, threads=4) as server:
        send = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "digest", "send", str(digest_id)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            # The burst starts once the deliveries are queued and the first messages are out.
            wait_for(lambda: len(smtp_server.received) >= 20 or send.poll() is not None)
            go = threading.Barrier(SIGNUPS + UNSUBSCRIBES, timeout=TIMEOUT)
            with ThreadPoolExecutor(max_workers=SIGNUPS + UNSUBSCRIBES) as pool:
                signups = [pool.submit(sign_up, server, n, go) for n in range(SIGNUPS)]
                leaves = [pool.submit(one_click, server, path, go) for path in paths]
                statuses = [f.result(TIMEOUT) for f in signups] + [
                    f.result(TIMEOUT) for f in leaves
                ]
            send_was_running = send.poll() is None
            send_output, _ = send.communicate(timeout=120)
        finally:
            if send.poll() is None:
                send.kill()
                send.communicate(timeout=30)
        # Each signup is followed by a confirmation email from the web process.
        expected = {signup_address(n) for n in range(SIGNUPS)}
        wait_for(lambda: expected <= {r for m in smtp_server.received for r in m.recipients})
    gunicorn_log = server.log_text()

    assert send_was_running, "the digest send ended before the burst did: nothing overlapped"
    assert [f.result() for f in signups] == [[200, 303]] * SIGNUPS, gunicorn_log
    assert [f.result() for f in leaves] == [[200]] * UNSUBSCRIBES, gunicorn_log
    assert all(status < 500 for answer in statuses for status in answer)
    for text in (gunicorn_log, send_output):
        assert "database is locked" not in text
        assert "Traceback" not in text
    assert send.returncode == 0, send_output
    # The log names people by id only: no address unless NEWSLETTER_LOG_ADDRESSES is on.
    assert "@example.net" not in gunicorn_log and "@example.org" not in gunicorn_log

    with session_factory(app)() as session:
        joined = session.execute(
            select(Subscriber.email, Subscriber.status, func.count(ConsentEvent.id))
            .join(ConsentEvent, ConsentEvent.subscriber_id == Subscriber.id)
            .where(Subscriber.email.like("visitor%"), ConsentEvent.kind == ConsentKind.GIVEN)
            .group_by(Subscriber.email, Subscriber.status)
        ).all()
        assert sorted(joined) == [(a, SubscriberStatus.PENDING, 1) for a in sorted(expected)]
        assert session.scalar(select(func.count()).select_from(Subscriber)) == (
            RECIPIENTS + SIGNUPS
        )
        withdrawn = session.execute(
            select(Subscriber.email, Subscriber.status)
            .join(ConsentEvent, ConsentEvent.subscriber_id == Subscriber.id)
            .where(ConsentEvent.kind == ConsentKind.WITHDRAWN)
        ).all()
        assert sorted(withdrawn) == [(a, SubscriberStatus.UNSUBSCRIBED) for a in sorted(leaving)]
        deliveries = dict(
            session.execute(
                select(Subscriber.email, Delivery.status)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == digest_id)
            ).all()
        )

    assert len(deliveries) == RECIPIENTS
    received = Counter(r for message in smtp_server.received for r in message.recipients)
    assert max(received.values()) == 1, "somebody got a message twice"
    for email, state in deliveries.items():
        if email in leaving:
            # Sent before they left, or skipped because they had: never both, never lost.
            assert state in {DeliveryStatus.SENT, DeliveryStatus.SKIPPED}, (email, state)
        else:
            assert state == DeliveryStatus.SENT, (email, state)
        assert received[email] == (1 if state == DeliveryStatus.SENT else 0), email
    summary = [line for line in send_output.splitlines() if line.startswith("sent ")]
    skipped = sum(state == DeliveryStatus.SKIPPED for state in deliveries.values())
    assert summary and summary[-1].startswith(f"sent {RECIPIENTS - skipped}, failed 0, ")
    assert set(received) == {e for e, s in deliveries.items() if s == "sent"} | expected
