"""Article HTML from feeds, made safe to store and show, and turned into plain text.

Feeds are written by other people's software: anything in them may be hostile. Only a small
set of tags and attributes survives, links keep only web and mail schemes, and nothing named
in the content (images, links) is ever fetched here.
"""

from __future__ import annotations

import html
import re

import nh3

from newsletter.balanced_html import balanced_html

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


def clean_html(fragment: str, base_url: str | None = None) -> str:
    """``fragment`` with only harmless markup left: no scripts, event handlers, styles,
    forms, frames or ``javascript:`` URLs, and no deeper than ``MAX_DEPTH`` elements.

    With ``base_url``, relative links and image addresses are made absolute against it.
    """
    return nh3.clean(
        # Balanced first: on deeply nested or misnested markup nh3 takes quadratic time.
        balanced_html(fragment, base_url=base_url),
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        strip_comments=True,
        link_rel="noopener noreferrer",
    ).strip()


# A tag in clean_html's output, where every "<" and ">" in text and attribute values is
# escaped: a plain pattern reads it exactly, and far faster than an HTML parser.
_CLEAN_TAG = re.compile(r"</?([a-z][a-z0-9]*)[^>]*>")


def _paragraphs(fragment: str, sanitised: bool, wanted: int | None = None) -> list[str]:
    """The text of each block of ``fragment``, a break wherever a block element starts or
    ends; reading stops once ``wanted`` are complete."""
    # Sanitise first so that script and style text never turns into summary text.
    clean = fragment if sanitised else clean_html(fragment)
    paragraphs: list[str] = []
    block: list[str] = []

    def close_block() -> None:
        text = " ".join(html.unescape("".join(block)).split())
        block.clear()
        if text:
            paragraphs.append(text)

    pos = 0
    for tag in _CLEAN_TAG.finditer(clean):
        block.append(clean[pos : tag.start()])
        pos = tag.end()
        if tag.group(1) in BLOCK_TAGS:
            close_block()
            if wanted is not None and len(paragraphs) >= wanted:
                return paragraphs
    block.append(clean[pos:])
    close_block()
    return paragraphs


def plain_text(fragment: str, *, sanitised: bool = False) -> str:
    """The readable text of an HTML fragment, paragraphs separated by blank lines.

    ``sanitised=True`` says the fragment is already ``clean_html`` output, not to be cleaned
    again.
    """
    return "\n\n".join(_paragraphs(fragment, sanitised))


def first_paragraph(fragment: str, *, sanitised: bool = False) -> str:
    """The text of the first non-empty paragraph of an HTML fragment ("" when there is none).

    ``sanitised`` as for :func:`plain_text`.
    """
    paragraphs = _paragraphs(fragment, sanitised, wanted=1)
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
    return " ".join(html.unescape(nh3.clean(balanced_html(value), tags=set())).split())
