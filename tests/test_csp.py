"""The Content-Security-Policy builder: directives as data, written safely into one header."""

from __future__ import annotations

import pytest

from newsletter import csp

SITE: csp.Policy = {
    "default-src": ["'none'"],
    "img-src": ["'self'", "data:"],
    "form-action": ["'self'"],
}


def test_header_writes_directives_in_order() -> None:
    assert csp.header(SITE) == "default-src 'none'; img-src 'self' data:; form-action 'self'"


def test_extend_adds_sources_and_directives_without_repeating_any() -> None:
    origins = ["https://www.example.org", "https://blog.example.org"]
    extended = csp.extend(
        SITE,
        {"form-action": origins, "frame-ancestors": ["'self'", *origins], "img-src": ["data:"]},
    )
    assert extended == {
        "default-src": ("'none'",),
        "img-src": ("'self'", "data:"),
        "form-action": ("'self'", *origins),
        "frame-ancestors": ("'self'", *origins),
    }
    # The policy it started from is left as it was.
    assert SITE["form-action"] == ["'self'"]


def test_none_gives_way_to_any_other_source() -> None:
    extended = csp.extend(SITE, {"default-src": ["https://api.example.org"]})
    assert extended["default-src"] == ("https://api.example.org",)
    assert csp.extend(SITE, {"connect-src": []})["connect-src"] == ("'none'",)


def test_sources_of_a_setting() -> None:
    assert csp.sources("  'self'   https://www.example.org ") == (
        "'self'",
        "https://www.example.org",
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "'self'; script-src *",
        "'self', https://evil.example",
        "https://www.example.org\r\nSet-Cookie: a=b",
        "https://bücher.example",
        "'self'\0",
    ],
)
def test_a_source_cannot_end_its_directive_or_the_header(text: str) -> None:
    with pytest.raises(csp.InvalidSource):
        csp.sources(text)


@pytest.mark.parametrize(
    "policy",
    [
        {"frame-ancestors": ["'self'; script-src *"]},
        {"frame-ancestors": ["https://a.example https://b.example"]},
        {"script-src *; frame-ancestors": ["'self'"]},
    ],
)
def test_header_refuses_what_is_not_a_directive_or_a_source(policy: csp.Policy) -> None:
    with pytest.raises(csp.InvalidSource):
        csp.header(policy)
