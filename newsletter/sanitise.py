"""Article HTML from feeds, made safe to store and show, and turned into plain text.

Feeds are written by other people's software: anything in them may be hostile. Only a small
set of tags and attributes survives, links keep only web and mail schemes, and nothing named
in the content (images, links) is ever fetched here.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

__all__ = [
    "SUMMARY_LENGTH",
    "clean_html",
    "first_paragraph",
    "plain_text",
    "shorten",
    "unescape_text",
]

SUMMARY_LENGTH = 400

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "cite",
    "code",
    "em",
    "figcaption",
    "figure",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
# No javascript:, data: or vbscript: anywhere; mailto only makes sense on links.
URL_SCHEMES = {"http", "https", "mailto"}
# Dropped with everything inside them, not just unwrapped.
DROPPED_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "form", "noscript"}
BLOCK_TAGS = {
    "blockquote",
    "br",
    "div",
    "figcaption",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "p",
    "pre",
    "tr",
}


def clean_html(fragment: str) -> str:
    """``fragment`` with only harmless markup left: no scripts, event handlers, styles,
    forms, frames or ``javascript:`` URLs."""
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
    ).strip()


class _TextExtractor(HTMLParser):
    """Collects text, with a paragraph break wherever a block element starts or ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[list[str]] = [[]]

    def _break(self) -> None:
        if self.blocks[-1]:
            self.blocks.append([])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCK_TAGS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCK_TAGS:
            self._break()

    def handle_data(self, data: str) -> None:
        self.blocks[-1].append(data)

    def paragraphs(self) -> list[str]:
        texts = (" ".join("".join(block).split()) for block in self.blocks)
        return [text for text in texts if text]


def _paragraphs(fragment: str) -> list[str]:
    # Sanitise first so that script and style text never turns into summary text.
    extractor = _TextExtractor()
    extractor.feed(clean_html(fragment))
    extractor.close()
    return extractor.paragraphs()


def plain_text(fragment: str) -> str:
    """The readable text of an HTML fragment, paragraphs separated by blank lines."""
    return "\n\n".join(_paragraphs(fragment))


def first_paragraph(fragment: str) -> str:
    """The text of the first non-empty paragraph of an HTML fragment ("" when there is none)."""
    paragraphs = _paragraphs(fragment)
    return paragraphs[0] if paragraphs else ""


def shorten(text: str, limit: int = SUMMARY_LENGTH) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return re.sub(r"[\s,;:.\-–—]+$", "", cut) + "…"


def unescape_text(value: str) -> str:
    """Plain text from a field that may carry entities or stray tags (a feed's title)."""
    return " ".join(html.unescape(nh3.clean(value, tags=set())).split())
