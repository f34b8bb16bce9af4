"""Settings of the signup box on the organisation's pages and of the brand it wears:
NEWSLETTER_EMBED_ORIGINS, _PRIVACY_URL, _LOGO_URL and _BRAND_COLOUR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from newsletter import ConfigError, create_app
from newsletter.app_db import get_engine
from newsletter.origins import origin_of
from tests.support.console import newsletter


def build(tmp_path: Path, **settings: Any) -> Flask:
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), **settings})
    get_engine(app).dispose()
    return app


def test_defaults(tmp_path: Path) -> None:
    config = build(tmp_path).config
    assert config["EMBED_ORIGINS"] == ()
    assert config["FRAME_ANCESTORS"] == "'self'"
    assert config["PRIVACY_URL"] == ""
    assert config["LOGO_URL"] == ""
    assert config["BRAND_COLOUR"] == "#0b5cad"


def test_origins_are_written_as_browsers_send_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "NEWSLETTER_EMBED_ORIGINS",
        "https://www.example.org  HTTPS://Example.ORG:443/\thttp://localhost:8000 "
        "https://bücher.example https://www.example.org http://[::1]:8080",
    )
    config = build(tmp_path).config
    assert config["EMBED_ORIGINS"] == (
        "https://www.example.org",
        "https://example.org",
        "http://localhost:8000",
        "https://xn--bcher-kva.example",
        "http://[::1]:8080",
    )


@pytest.mark.parametrize(
    "value",
    [
        "www.example.org",
        "https://www.example.org/news/",
        "https://www.example.org?page=1",
        "https://www.example.org#box",
        "https://editor@www.example.org",
        "ftp://www.example.org",
        "https://",
        "https://www.example.org:99999",
        "null",
        "*",
        "https://*.example.org",
    ],
)
def test_a_malformed_origin_stops_start_up_in_one_line(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(tmp_path, EMBED_ORIGINS=f"https://ok.example.org {value}")
    message = str(raised.value)
    assert message.startswith("NEWSLETTER_EMBED_ORIGINS: ")
    assert repr(value) in message
    assert "such as https://www.example.org" in message
    assert "\n" not in message


def test_console_script_names_the_bad_origin(tmp_path: Path) -> None:
    result = newsletter(
        "--help",
        instance=tmp_path / "instance",
        settings={"NEWSLETTER_EMBED_ORIGINS": "www.example.org"},
    )
    assert result.returncode == 1
    assert result.stderr == (
        "Error: NEWSLETTER_EMBED_ORIGINS: 'www.example.org' is not an origin; write the scheme "
        "and host (and a port, if any) only, such as https://www.example.org\n"
    )


@pytest.mark.parametrize(
    ("frame_ancestors", "expected"),
    [
        (None, "'self' https://www.example.org https://example.org"),
        ("'self' https://www.example.org", "'self' https://www.example.org https://example.org"),
        (
            "https://partner.example.net",
            "https://partner.example.net https://www.example.org https://example.org",
        ),
        # Someone who forbids every frame means it: the iframe box then shows nowhere.
        ("'none'", "'none'"),
    ],
)
def test_frame_ancestors_include_the_embed_origins(
    tmp_path: Path, frame_ancestors: str | None, expected: str
) -> None:
    settings: dict[str, Any] = {"EMBED_ORIGINS": "https://www.example.org https://example.org"}
    if frame_ancestors is not None:
        settings["FRAME_ANCESTORS"] = frame_ancestors
    app = build(tmp_path, **settings)
    assert app.config["FRAME_ANCESTORS"] == expected
    policy = app.test_client().get("/subscribe").headers["Content-Security-Policy"]
    assert f"frame-ancestors {expected}" in policy


@pytest.mark.parametrize(("value", "stored"), [("#123", "#112233"), (" #0B5CAD ", "#0b5cad")])
def test_brand_colour_is_a_hex_colour(tmp_path: Path, value: str, stored: str) -> None:
    assert build(tmp_path, BRAND_COLOUR=value).config["BRAND_COLOUR"] == stored


@pytest.mark.parametrize(
    ("value", "explains"),
    [
        ("blue", "expected a colour such as #0b5cad, got 'blue'"),
        ("#12345", "expected a colour such as #0b5cad"),
        ("#000; background: url(x)", "expected a colour such as #0b5cad"),
        (
            "#ffcc00",
            "#ffcc00 is too light for the white text on buttons (contrast 1.5:1, "
            "at least 4.5:1 is needed); choose a darker shade",
        ),
    ],
)
def test_a_bad_brand_colour_stops_start_up(tmp_path: Path, value: str, explains: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(tmp_path, BRAND_COLOUR=value)
    message = str(raised.value)
    assert message.startswith("NEWSLETTER_BRAND_COLOUR: ")
    assert explains in message


@pytest.mark.parametrize("setting", ["PRIVACY_URL", "LOGO_URL"])
@pytest.mark.parametrize(
    "value", ["www.example.org/privacy", "javascript:alert(1)", 'https://x.org/"onload="x']
)
def test_a_bad_address_stops_start_up(tmp_path: Path, setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(tmp_path, **{setting: value})
    assert str(raised.value).startswith(f"NEWSLETTER_{setting}: expected an address starting")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://www.example.org/news/a-story?x=1#top", "https://www.example.org"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("https://www.example.org:443/", "https://www.example.org"),
        ("null", None),
        ("", None),
        (None, None),
        ("https://www.example.org\r\nX: y", None),
        ("data:text/html,hi", None),
        ("https://www.example.org:port/", None),
    ],
)
def test_origin_of_an_address(url: str | None, origin: str | None) -> None:
    assert origin_of(url) == origin
