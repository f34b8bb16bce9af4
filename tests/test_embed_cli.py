"""``newsletter embed``: the box as printed, and a box posted just as printed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask

from newsletter.app_db import session_factory
from newsletter.embed_script import script
from newsletter.services.consent import statement_hash
from newsletter.services.topic_choices import QUESTION
from newsletter.services.topics import topics_of
from tests.support.html import parse_page
from tests.support.records import events, statements, subscriber
from tests.support.topics import make_topic

SITE = "https://www.example.org"
BASE = "https://news.example.org"


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EMBED_ORIGINS=SITE, PRIVACY_URL=f"{SITE}/privacy")


def test_html_box_is_a_plain_form_with_every_mark_and_the_current_wording(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["embed"])

    assert result.exit_code == 0, result.output
    html = result.stdout
    page = parse_page(html)
    assert f'<form class="nl-box" data-newsletter-box method="post" action="{BASE}/subscribe"' in (
        html
    )
    assert "Sign up for updates on the work of Open Rights Watch" in page.texts["nl-title"]
    assert "* mandatory fields" in html.replace('<span aria-hidden="true">*</span>', "*")
    for name, label in [
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("email", "Email address"),
    ]:
        assert page.inputs[name]["id"] == f"nl-{name}"
        assert "required" in page.inputs[name]
        assert (
            f'<label for="nl-{name}">{label} '
            '<span class="nl-required" aria-hidden="true">*</span></label>'
        ) in html
    statement = app.config["CONSENT_STATEMENT"]
    assert statement.replace("'", "&#39;") in html
    assert page.inputs["consent"]["value"] == "y"
    # The honeypot is hidden from people, screen readers and the keyboard, without any CSS.
    assert '<div class="nl-field" hidden>\n    <label for="nl-website">' in html
    assert page.inputs["website"]["tabindex"] == "-1"
    assert page.value("box_style") == "html"
    assert page.value("statement") == statement_hash(statement)
    assert page.value("source") == ""
    assert "return" not in page.inputs
    assert f'<a href="{SITE}/privacy">' in html
    # No cookie and no script needed; the script is one optional line at the end.
    assert "csrf" not in html
    [script_line] = [line for line in html.splitlines() if "<script" in line]
    assert script_line == f'<script src="{BASE}/embed.js?v={script()[1]}" async></script>'
    assert html.rstrip().endswith(script_line)
    # The wording it shows is stored, so the proof can name it later.
    assert [stored.text for stored in statements(app)] == [statement]


def test_the_box_as_printed_signs_a_person_up_from_the_site(app: Flask) -> None:
    printed = parse_page(app.test_cli_runner().invoke(args=["embed"]).stdout)
    data = {name: attributes.get("value") or "" for name, attributes in printed.inputs.items()}
    data.update(first_name="Ada", last_name="Lovelace", email="ada@example.org")

    response = app.test_client().post(
        "/subscribe", data=data, headers={"Origin": SITE, "Referer": f"{SITE}/"}
    )

    assert response.status_code == 303
    stored = subscriber(app, "ada@example.org")
    assert stored is not None and stored.status == "pending"
    [event] = events(app)
    assert event.box_style == "html"
    [statement] = statements(app)
    assert event.statement_id == statement.id
    assert statement.text == app.config["CONSENT_STATEMENT"]


def test_return_names_a_page_of_the_site(app: Flask) -> None:
    back = f"{SITE}/newsletter/thanks"
    result = app.test_cli_runner().invoke(args=["embed", "--return", back])
    assert result.exit_code == 0
    assert parse_page(result.stdout).value("return") == back


def test_iframe_box_is_a_frame_of_embed(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["embed", "--style", "iframe"])

    assert result.exit_code == 0, result.output
    html = result.stdout
    assert (
        f'<iframe class="nl-frame" src="{BASE}/embed" '
        'title="Sign up for updates on the work of Open Rights Watch"'
    ) in html
    # The frame's request names the article, so that consent records it.
    assert 'referrerpolicy="no-referrer-when-downgrade"' in html
    assert f'<script src="{BASE}/embed.js?v={script()[1]}" async></script>' in html
    assert "<form" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--topic", "north-korea"],
            "Error: --topic: there is no topic north-korea (see `newsletter topics list`)",
        ),
        (
            ["--topic", "North Korea"],
            "Error: --topic: 'North Korea' is not a topic slug: use 1 to 64 lower-case letters, "
            "digits and hyphens, such as north-korea",
        ),
        (
            ["--return", "https://evil.example/"],
            "Error: --return: 'https://evil.example/' is not an address on "
            "NEWSLETTER_EMBED_ORIGINS (https://www.example.org)",
        ),
        (
            ["--style", "iframe", "--return", f"{SITE}/thanks"],
            "Error: --return goes with --style html: the frame thanks in place",
        ),
    ],
)
def test_what_cannot_be_printed_is_refused_in_one_line(
    app: Flask, args: list[str], message: str
) -> None:
    result = app.test_cli_runner().invoke(args=["embed", *args])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"{message}\n"


def test_without_embed_origins_it_warns_that_the_box_would_be_refused(
    make_app: Callable[..., Flask],
) -> None:
    result = make_app().test_cli_runner().invoke(args=["embed"])
    assert result.exit_code == 0
    assert result.stderr.startswith("Warning: NEWSLETTER_EMBED_ORIGINS is empty, so every signup")
    assert "<form" in result.stdout


# --- topics ---------------------------------------------------------------------------------


def _topics(app: Flask) -> None:
    with session_factory(app)() as session:
        for slug in ["prisons", "north-korea", "asylum"]:
            make_topic(session, slug)


def test_the_box_offers_the_topics_and_preselects_those_named(app: Flask) -> None:
    _topics(app)

    result = app.test_cli_runner().invoke(
        args=["embed", "--topic", "north-korea", "--topic", "asylum"]
    )

    assert result.exit_code == 0, result.output
    html = result.stdout
    assert '<fieldset class="nl-field nl-topics" aria-describedby="nl-topics-hint">' in html
    assert f"<legend>{QUESTION}</legend>" in html
    for slug, name, ticked in [
        ("asylum", "Asylum", " checked"),
        ("north-korea", "North Korea", " checked"),
        ("prisons", "Prisons", ""),
    ]:
        assert (
            f'<input type="checkbox" id="nl-topic-{slug}" name="topics" value="{slug}"{ticked}>'
        ) in html
        assert f'<label for="nl-topic-{slug}">{name}</label>' in html
    assert html.index("nl-topic-prisons") < html.index('id="nl-consent"')


def test_without_topics_the_box_asks_nothing(app: Flask) -> None:
    assert "<fieldset" not in app.test_cli_runner().invoke(args=["embed"]).stdout


def test_the_frame_is_printed_with_its_topics_in_its_address(app: Flask) -> None:
    _topics(app)

    result = app.test_cli_runner().invoke(
        args=["embed", "--style", "iframe", "--topic", "asylum", "--topic", "prisons"]
    )

    assert result.exit_code == 0, result.output
    assert f'src="{BASE}/embed?topic=asylum&amp;topic=prisons"' in result.stdout


def test_the_box_as_printed_with_a_topic_stores_the_choice(app: Flask) -> None:
    _topics(app)
    printed = app.test_cli_runner().invoke(args=["embed", "--topic", "prisons"]).stdout
    data: dict[str, str | list[str]] = {
        name: attributes.get("value") or ""
        for name, attributes in parse_page(printed).inputs.items()
        if name != "topics"
    }
    # What a browser sends: the preselected box and one more the visitor ticked.
    data.update(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.org",
        topics=["prisons", "asylum"],
    )

    response = app.test_client().post(
        "/subscribe", data=data, headers={"Origin": SITE, "Referer": f"{SITE}/"}
    )

    assert response.status_code == 303
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    with session_factory(app)() as session:
        assert topics_of(session, [stored.id]) == {stored.id: ("asylum", "prisons")}
    [event] = events(app)
    assert event.box_style == "html"
    assert event.choices is not None
    assert json.loads(event.choices)["chosen"] == ["asylum", "prisons"]
