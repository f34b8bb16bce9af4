"""Sanitising article HTML and turning it into plain text."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from newsletter.balanced_html import MAX_DEPTH
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


class _Depth(HTMLParser):
    """The deepest nesting of elements in markup the sanitiser wrote (always well formed)."""

    VOID = {"br", "hr", "img"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = self.deepest = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1


def deepest(html: str) -> int:
    reader = _Depth()
    reader.feed(html)
    reader.close()
    return reader.deepest


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ("<blockquote>", "</blockquote>"),
        ("<div>", "</div>"),
        ("<ul><li>", "</li></ul>"),
        ("<b>", "</i>"),  # misnested: nothing ever closes
        ('<p title="x>">', ""),  # a quoted ">" does not end the tag
        ("<table><tr><td>", "</div>"),  # an end tag that closes nothing here
        ("<em><!--</em>-->", "</em>"),  # an end tag hidden in a comment closes nothing
    ],
)
def test_deep_nesting_is_capped_and_the_text_kept(opening: str, closing: str) -> None:
    levels = 5_000
    html = opening * levels + '<p>The <a href="https://example.org/">end</a>.</p>' + closing * 9
    cleaned = clean_html(html + "<script>alert(1)</script>")
    assert deepest(cleaned) <= MAX_DEPTH
    assert "<script" not in cleaned and "alert" not in cleaned
    # Past the cap the tags go and the text stays.
    assert plain_text(cleaned).endswith("The end.")
    assert plain_text(html).endswith("The end.")


def test_misnested_formatting_is_not_copied_into_every_paragraph() -> None:
    # Each paragraph would reopen every formatting element left open: 1,000 of them times
    # 1,000 paragraphs.
    opened = "".join(f'<b title="{number}">' for number in range(1_000))
    html = f"<p>{opened}</p>" + "<p>Paragraph.</p>" * 1_000
    cleaned = clean_html(html)
    assert len(cleaned) < 3 * len(html)
    assert cleaned.count("Paragraph.") == 1_000


def test_sloppy_but_ordinary_markup_reads_as_before() -> None:
    html = (
        "<p>One<p>Two <b>bold<i>both</b> italic</i>"
        "<ul><li>a<li>b <a href='https://example.org/?a=1&amp;b=2' title=\"x > y\">l</a></ul>"
        "<table><tr><td>1<td>2<tr><td>3</table><h2>Head<h3>Sub</h3>"
        "<p>a &lt; b &amp; c < d<br/>line</br>end"
    )
    assert clean_html(html) == (
        "<p>One</p><p>Two <b>bold<i>both</i></b><i> italic</i></p>"
        '<ul><li>a</li><li>b <a href="https://example.org/?a=1&amp;b=2" title="x &gt; y" '
        'rel="noopener noreferrer">l</a></li></ul>'
        "<table><tbody><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></tbody></table>"
        "<h2>Head</h2><h3>Sub</h3><p>a &lt; b &amp; c &lt; d<br>line<br>end</p>"
    )


def test_deep_titles_are_plain_text() -> None:
    assert unescape_text("<b>" * 5_000 + "Title &amp; more" + "</b>" * 5_000) == "Title & more"
