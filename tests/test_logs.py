"""One log line per signup, confirmation, unsubscribe and send summary; people are named by
id, and by address only when ``NEWSLETTER_LOG_ADDRESSES`` is on."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask

from newsletter.app_db import session_factory
from newsletter.logs import person
from newsletter.models import Subscriber
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import csrf_token, post_signup
from tests.sending_support import add_articles_and_digest
from tests.support.mailbox import find_link, read_maildir

BASE = "https://news.example.org"
ADDRESS = "ada@example.org"


def newsletter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if record.name.startswith("newsletter")
    ]


def mail(app: Flask, outbox_path: Path) -> list[EmailMessage]:
    get_dispatcher(app).drain()
    return read_maildir(outbox_path)


def local(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url.removeprefix(BASE)


@pytest.mark.parametrize("with_addresses", [False, True])
def test_a_subscribers_way_through_the_log(
    make_app: Callable[..., Flask],
    outbox_path: Path,
    caplog: pytest.LogCaptureFixture,
    with_addresses: bool,
) -> None:
    app = make_app(LOG_ADDRESSES=with_addresses)
    client = app.test_client()
    caplog.set_level("INFO", logger="newsletter")

    assert post_signup(client, email=ADDRESS).status_code == 303
    confirm = local(find_link(mail(app, outbox_path)[-1], "/confirm/"))
    page = client.get(confirm)
    assert client.post(confirm, data={"csrf_token": csrf_token(page)}).status_code == 200

    with session_factory(app).begin() as session:
        digest_id = add_articles_and_digest(session)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output

    digest = mail(app, outbox_path)[-1]
    leave = local(digest["List-Unsubscribe"].strip("<>"))
    one_click = client.post(
        leave,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200

    with session_factory(app)() as session:
        subscriber_id = session.query(Subscriber.id).filter_by(email=ADDRESS).scalar()
    who = person(subscriber_id, ADDRESS, with_addresses)
    assert who == f"subscriber {subscriber_id}" + (f" <{ADDRESS}>" if with_addresses else "")
    lines = newsletter_lines(caplog)
    assert f"signup: {who} is pending; confirmation email queued" in lines
    assert f"confirmation: {who} is active" in lines
    assert f"unsubscribe: {who} is unsubscribed (one-click unsubscribe)" in lines
    summaries = [line for line in lines if line.startswith("send summary:")]
    assert len(summaries) == 1
    assert summaries[0].startswith(
        f"send summary: digest {digest_id}: sent 1, failed 0, skipped 0, unknown 0, queued 0 in "
    )
    assert summaries[0].endswith("; exit 0")
    # The address shows in the three lines about the person, and only when asked for.
    with_address = [line for line in lines if ADDRESS in line]
    assert len(with_address) == (3 if with_addresses else 0)
    assert ADDRESS not in summaries[0]


def test_pressing_the_unsubscribe_button_is_logged_with_its_method(
    make_app: Callable[..., Flask], outbox_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DOUBLE_OPT_IN=False)
    client = app.test_client()
    caplog.set_level("INFO", logger="newsletter")
    assert post_signup(client, email=ADDRESS).status_code == 303
    with session_factory(app).begin() as session:
        digest_id = add_articles_and_digest(session)
    assert app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)]).exit_code == 0
    leave = local(mail(app, outbox_path)[-1]["List-Unsubscribe"].strip("<>"))

    assert client.get(leave).status_code == 200
    # The page's button posts an empty form; a second press finds the work done.
    assert client.post(leave).status_code == 200
    assert client.post(leave).status_code == 200

    lines = [line for line in newsletter_lines(caplog) if line.startswith("unsubscribe:")]
    assert len(lines) == 2  # one per request, the repeat included
    assert all(line.endswith("is unsubscribed (unsubscribe page)") for line in lines)
    assert not any(ADDRESS in line for line in newsletter_lines(caplog))
