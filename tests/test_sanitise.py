"""Sanitising article HTML and turning it into plain text."""

from __future__ import annotations

from newsletter.sanitise import clean_html, first_paragraph, plain_text, shorten, unescape_text


def test_clean_html_keeps_harmless_markup() -> None:
    html = (
        '<h2>News</h2><p>A <a href="https://example.org/" title="t">link</a>.</p>'
        "<ul><li>x</li></ul>"
    )
    assert clean_html(html) == (
        '<h2>News</h2><p>A <a href="https://example.org/" title="t" '
        'rel="noopener noreferrer">link</a>.</p><ul><li>x</li></ul>'
    )


def test_clean_html_removes_dangerous_markup() -> None:
    html = (
        '<div style="position:fixed" class="x" id="y"><p onmouseover="x()">Hi</p></div>'
        '<a href="javascript:alert(1)">a</a><a href="data:text/html,x">b</a>'
        '<a href="vbscript:msgbox">c</a><svg onload="x()"></svg><object data="x"></object>'
        "<!-- a comment --><noscript><p>no</p></noscript><math><mi>x</mi></math>"
    )
    cleaned = clean_html(html)
    for forbidden in ("style", "class", "id=", "onmouseover", "javascript", "data:", "vbscript"):
        assert forbidden not in cleaned
    for forbidden in ("<svg", "onload", "<object", "comment", "<noscript", "<math"):
        assert forbidden not in cleaned
    assert "<p>Hi</p>" in cleaned


def test_plain_text_and_first_paragraph() -> None:
    html = "<p>One &amp; <b>two</b>.</p><script>bad()</script><ul><li>Three</li></ul>"
    assert plain_text(html) == "One & two.\n\nThree"
    assert first_paragraph(html) == "One & two."
    assert first_paragraph("<p> </p><br><p>Later</p>") == "Later"
    assert first_paragraph("") == ""


def test_shorten() -> None:
    assert shorten("  short   text ") == "short text"
    assert shorten("one two three four five", 12) == "one two…"
    assert len(shorten("x" * 50, 10)) == 10


def test_unescape_text() -> None:
    assert unescape_text("Tom &amp; <b>Jerry</b> <script>x()</script>") == "Tom & Jerry"
