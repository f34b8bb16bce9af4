"""Digest messages: rendered once, filled per person, built and encoded correctly, safe."""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from newsletter.mail.digest import (
    SAMPLE_RECIPIENT,
    PreparedDigest,
    prepare_digest,
)
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import message_bytes
from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from newsletter.tokens import Purpose
from tests.sending_support import digest_to_one
from tests.support.articles import add_articles
from tests.support.mailbox import body_text
from tests.support.smtp import SMTPServer

SECRET = "test-secret-key-of-reasonable-length"
POSTAL = "1 Example Street, Example City"
# Headers are folded only at RFC 5322's hard limit, as the service writes them.
POLICY = SMTP.clone(max_line_length=998)
ADA = Person(
    id=7, token_nonce="n7", email="ada@example.org", first_name="Ada", last_name="Lovelace"
)


def prepared_digest(app: Flask, session: Session, **article_changes: object) -> PreparedDigest:
    add_articles(session, [1, 2, 3], **article_changes)
    runtime = get_runtime(app)
    digest = create_digest(session, runtime.site)
    session.commit()
    return prepare_digest(session, runtime.site, runtime.renderer, digest)


def tag_names(html: str) -> list[str]:
    """Every element in ``html``, by tag name, as a browser's parser sees them."""
    names: list[str] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names.append(tag)

    Collector().feed(html)
    return names


def reparse(message: Outgoing) -> tuple[bytes, EmailMessage]:
    data = message.data
    parsed = email.message_from_bytes(data, policy=default)
    assert isinstance(parsed, EmailMessage)
    return data, parsed


def test_message_structure_and_headers(app: Flask, session: Session) -> None:
    prepared = prepared_digest(app, session)
    site = get_runtime(app).site
    message_id = stable_message_id(site, "digest", 1)
    data, parsed = reparse(prepared.outgoing_for(ADA, message_id))

    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parsed.iter_parts())
    assert parsed["Subject"] == "Open Rights Watch: Article number 3 (+2 more)"
    assert parsed["From"] == "Open Rights Watch <news@example.org>"
    assert parseaddr(parsed["To"]) == ("Ada Lovelace", "ada@example.org")
    assert parsedate_to_datetime(parsed["Date"]).tzinfo is not None
    assert parsed["Message-ID"] == message_id
    assert message_id.endswith("@example.org>")
    unsubscribe = parsed["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://news.example.org/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == "Open Rights Watch <newsletter.example.org>"
    token = unsubscribe.strip("<>").rsplit("/", 1)[1]
    data_in_token = site.tokens.read(Purpose.UNSUBSCRIBE, token)
    assert (data_in_token.subscriber_id, data_in_token.nonce) == (7, "n7")

    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    # Round trip: parsing the bytes and writing them again changes nothing.
    assert message_bytes(email.message_from_bytes(data, policy=POLICY)) == data


def test_both_parts_carry_the_footer_and_articles(app: Flask, session: Session) -> None:
    prepared = prepared_digest(app, session)
    _, parsed = reparse(prepared.outgoing_for(ADA, "<m@example.org>"))
    text = body_text(parsed)
    html = body_text(parsed, "html")
    unsubscribe = parsed["List-Unsubscribe"].strip("<>")
    for part in (" ".join(text.split()), " ".join(html.split())):
        assert unsubscribe in part
        assert POSTAL in part
        assert "https://news.example.org/digests/1" in part
        assert "you subscribed to news from Open Rights Watch" in part
        assert "Hello Ada," in part
        for number in (1, 2, 3):
            assert f"Article number {number}" in part
            assert f"https://example.org/news/{number}" in part
            assert f"Summary of article {number}." in part
        assert "Read more" in part
        assert "4 March 2025" in part
    assert text.index("Article number 3") < text.index("Article number 1")
    assert "<script" not in html.lower()
    assert f'href="{unsubscribe}"' in html
    assert "style=" in html  # CSS is inlined
    assert all(len(line) <= 76 or "://" in line for line in text.splitlines())


def test_each_message_gets_its_own_links_and_name(app: Flask, session: Session) -> None:
    prepared = prepared_digest(app, session)
    grace = Person(
        id=8, token_nonce="n8", email="grace@example.org", first_name="Grace", last_name="Hopper"
    )
    _, first = reparse(prepared.outgoing_for(ADA, "<1@example.org>"))
    _, second = reparse(prepared.outgoing_for(grace, "<2@example.org>"))
    assert first["List-Unsubscribe"] != second["List-Unsubscribe"]
    assert "Hello Grace," in body_text(second)
    assert "Ada" not in body_text(second) + body_text(second, "html")
    assert second["List-Unsubscribe"].strip("<>") in body_text(second, "html")


def test_a_picture_without_alt_text_is_decorative(app: Flask, session: Session) -> None:
    # The title is right beside it: an alt text repeating it is read out twice.
    prepared = prepared_digest(app, session, image_url="https://example.org/pic.jpg")
    html = prepared.html_for(ADA)
    assert 'src="https://example.org/pic.jpg" alt=""' in html
    assert 'alt="Article number' not in html
    # Its link, the title's twin, is left out of the reading order too: a link holding only a
    # decorative picture would have no name.
    assert re.search(r'<a href="[^"]+" aria-hidden="true" tabindex="-1"[^>]*><img', html), html


def test_a_picture_keeps_the_feeds_alt_text(app: Flask, session: Session) -> None:
    prepared = prepared_digest(
        app, session, image_url="https://example.org/pic.jpg", image_alt="Protesters at a court"
    )
    html = prepared.html_for(ADA)
    assert 'src="https://example.org/pic.jpg" alt="Protesters at a court"' in html
    assert 'aria-hidden="true"' not in html


def test_non_ascii_names_and_subjects_are_encoded(app: Flask, session: Session) -> None:
    add_articles(session, [1], title="Zoë’s «victory» in court – 東京")
    runtime = get_runtime(app)
    digest = create_digest(session, runtime.site)
    session.commit()
    prepared = prepare_digest(session, runtime.site, runtime.renderer, digest)
    person = Person(
        id=1, token_nonce="n", email="zoe@example.org", first_name="Zoë", last_name="Ødegård"
    )
    data, parsed = reparse(prepared.outgoing_for(person, "<m@example.org>"))
    assert data.isascii()
    assert b"=?utf-8?" in data
    assert parsed["Subject"] == "Open Rights Watch: Zoë’s «victory» in court – 東京"
    assert parseaddr(parsed["To"]) == ("Zoë Ødegård", "zoe@example.org")
    assert "Hello Zoë," in body_text(parsed)


def test_article_text_is_never_template_code(app: Flask, session: Session) -> None:
    prepared = prepared_digest(
        app,
        session,
        title="{{ config }} <b>bold</b>",
        summary="{% for key in config %}{{ key }}{% endfor %} {{ self.__init__ }}",
    )
    data, parsed = reparse(prepared.outgoing_for(ADA, "<m@example.org>"))
    text = body_text(parsed)
    html = body_text(parsed, "html")
    assert "{{ config }} <b>bold</b>" in text
    assert "{% for key in config %}{{ key }}{% endfor %} {{ self.__init__ }}" in text
    assert "{{ config }} &lt;b&gt;bold&lt;/b&gt;" in html
    assert "b" not in tag_names(html)
    for secret in (SECRET, "SECRET_KEY", "DATABASE_URL"):
        assert secret not in text
        assert secret not in html
        assert secret.encode() not in data


def test_names_cannot_inject_markup_headers_or_slots(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed marker, so the name below contains exactly the text of the link's slot.
    monkeypatch.setattr("newsletter.mail.pieces.secrets.token_hex", lambda _size: "fixed")
    prepared = prepared_digest(app, session)
    marker = "slotfixedunsubscribeurlend"
    person = Person(
        id=9,
        token_nonce="n9",
        email="eve@example.org",
        first_name=f'<img src=x onerror=alert(1)>"{marker}{{{{ config }}}}\r\nBcc: all@example.org',
        last_name="Doe\nX-Evil: yes",
    )
    data, parsed = reparse(prepared.outgoing_for(person, "<m@example.org>"))
    html = body_text(parsed, "html")
    text = body_text(parsed)
    assert tag_names(html).count("img") == 0
    assert "&lt;img src=x onerror=alert(1)&gt;&quot;" in html
    # The name's copy of the marker stays text; only the real slot became a link.
    assert f"{marker}{{{{ config }}}} Bcc: all@example.org," in " ".join(text.split())
    assert html.count(marker) == 1
    assert "Bcc" not in parsed
    assert "X-Evil" not in parsed
    headers = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in headers
    assert b"\r\nX-Evil:" not in headers
    assert parsed["To"].count("\n") == 0
    assert SECRET not in html + text


def test_preview_recipient_matches_no_subscriber(app: Flask, session: Session) -> None:
    prepared = prepared_digest(app, session)
    assert "Hello Alex," in prepared.text_for(SAMPLE_RECIPIENT)
    assert SAMPLE_RECIPIENT.id == 0


def test_templates_without_an_unsubscribe_link_are_refused(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    (tmp_path / "digest.txt").write_text("Hello {{ first_name }}\n")
    (tmp_path / "digest.html").write_text("<p>{{ unsubscribe_url }}</p>")
    add_articles(session, [1])
    runtime = get_runtime(app)
    digest = create_digest(session, runtime.site)
    with pytest.raises(ValueError, match="the digest.txt template has no unsubscribe link"):
        prepare_digest(session, runtime.site, EmailRenderer(tmp_path), digest)


@pytest.mark.parametrize(
    "first_name",
    [
        "Ada",
        "Zoë-Ünal 東京 🙂",
        "= =3D =\r\n trailing space ",
        "." + "x" * 99,
        "From the start",
    ],
)
@pytest.mark.usefixtures("frozen_token_clock")
def test_encoded_parts_decode_to_the_personal_text(
    app: Flask, session: Session, first_name: str
) -> None:
    prepared = prepared_digest(app, session)
    person = Person(
        id=3, token_nonce="n3", email="p@example.org", first_name=first_name, last_name="L"
    )
    data, parsed = reparse(prepared.outgoing_for(person, "<m@example.org>"))
    text_part, html_part = parsed.iter_parts()
    assert text_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_part.get_payload(decode=True).decode("utf-8") == prepared.text_for(person).replace(
        "\n", "\r\n"
    )
    assert html_part.get_payload(decode=True).decode("utf-8") == prepared.html_for(person).replace(
        "\n", "\r\n"
    )
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert data.isascii()


def test_the_preheader_is_hidden_by_layout_not_by_colour(app: Flask, session: Session) -> None:
    # Text coloured like the background, or in a tiny font, is what spam filters look for.
    html = prepared_digest(app, session).html_for(ADA)
    match = re.search(r'<div class="preheader" style="([^"]*)">Summary of article 3\.</div>', html)
    assert match, html[:2000]
    style = match.group(1)
    assert "display: none" in style
    assert "opacity: 0" in style
    assert "color" not in style
    assert "font-size" not in style


def test_the_web_version_is_linked_at_the_top_and_the_foot(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    message = digest_to_one(make_app(MAIL_URL=smtp_server.url), smtp_server).message
    url = "https://news.example.org/digests/1"
    text = body_text(message)
    lines = text.splitlines()
    assert lines.count(url) == 2
    # Above the greeting, and again after the articles.
    assert lines.index(url) < lines.index("Hello First0,")
    assert text.rindex(url) > text.index("Article number 1")
    html = body_text(message, "html")
    links = re.findall(rf'<a href="{re.escape(url)}"[^>]*>([^<]+)</a>', html)
    assert links == ["View in browser", "View this email in your browser"]
    assert lines[lines.index(url) - 1] == "View in browser:"
    assert html.index(url) < html.index("Hello First0,")


def test_a_delivered_pictures_alt_text_does_not_repeat_the_title(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    received = digest_to_one(app, smtp_server, image_url="https://example.org/pic.jpg")
    message = received.message
    html = body_text(message, "html")
    assert re.findall(r'<img [^>]*alt="([^"]*)"', html) == ["", ""]
