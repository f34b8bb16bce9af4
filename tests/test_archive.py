"""``GET /digests/<id>``: the public web version, only once a digest goes out."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.db import utcnow
from newsletter.models import Digest, DigestStatus
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from tests.conftest import post_signup
from tests.support.articles import add_articles


def make_digest(app: Flask, session: Session, **changes: object) -> Digest:
    add_articles(session, [1, 2], **changes)
    digest = create_digest(session, get_runtime(app).site)
    session.commit()
    return digest


def test_drafts_and_unknown_digests_are_not_found(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    digest = make_digest(app, session)
    response = client.get(f"/digests/{digest.id}")
    assert response.status_code == 404
    assert "Article number" not in response.get_data(as_text=True)
    assert client.get("/digests/999").status_code == 404
    assert client.get("/digests/abc").status_code == 404


def test_sending_and_sent_digests_are_shown(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    digest = make_digest(app, session, image_url="https://example.org/pic.jpg")
    for status in (DigestStatus.SENDING, DigestStatus.SENT):
        digest.status = status
        digest.send_started_at = utcnow()
        session.commit()
        response = client.get(f"/digests/{digest.id}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert f"<h1>{digest.subject}</h1>" in page
        assert page.index("Article number 2") < page.index("Article number 1")
        assert '<a href="https://example.org/news/1">Article number 1</a>' in page
        assert "Summary of article 1." in page
        # The title is beside the picture: without an alt text from the feed it is decorative.
        assert '<img class="digest-image" src="https://example.org/pic.jpg" alt="">' in page
        assert "1 Example Street, Example City" in page
        assert "Sent on" in page
        policy = response.headers["Content-Security-Policy"]
        assert "img-src 'self' https: data:" in policy
        assert "script-src" not in policy and "default-src 'none'" in policy
        assert response.headers["Cache-Control"] == "public, max-age=300"


def test_web_version_keeps_the_site_policy_but_for_images(make_app: Callable[..., Flask]) -> None:
    app = make_app(FRAME_ANCESTORS="'self' https://www.example.org")
    with session_factory(app)() as session:
        digest = make_digest(app, session)
        digest.status = DigestStatus.SENT
        digest.sent_at = utcnow()
        session.commit()
        response = app.test_client().get(f"/digests/{digest.id}")
    site_policy = app.test_client().get("/subscribe").headers["Content-Security-Policy"]
    page_policy = response.headers["Content-Security-Policy"]
    assert page_policy == site_policy.replace("img-src 'self' data:", "img-src 'self' https: data:")
    assert "frame-ancestors 'self' https://www.example.org" in page_policy


def test_web_version_holds_no_personal_data(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    post_signup(client, first_name="Winifred", last_name="Quackenbush", email="wq@example.org")
    digest = make_digest(app, session)
    digest.status = DigestStatus.SENT
    digest.sent_at = utcnow()
    session.commit()
    page = client.get(f"/digests/{digest.id}").get_data(as_text=True)
    for personal in ("Winifred", "Quackenbush", "wq@example.org", "/unsubscribe/", "Hello"):
        assert personal not in page


def test_article_text_is_escaped_on_the_web_version(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    digest = make_digest(app, session, title="<script>alert(1)</script> {{ config }}")
    digest.status = DigestStatus.SENT
    session.commit()
    page = client.get(f"/digests/{digest.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ config }}" in page
    assert "test-secret-key" not in page


def test_ids_past_what_the_database_holds_are_not_found(client: FlaskClient) -> None:
    # 2**31 is past PostgreSQL's INTEGER, 2**63 past SQLite's: a 404, never a 500.
    for number in ("2147483648", "9223372036854775808", "1" + "0" * 40):
        response = client.get(f"/digests/{number}")
        assert response.status_code == 404
        assert "Page not found" in response.get_data(as_text=True)
