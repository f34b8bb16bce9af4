"""Untrusted HTML rewritten, in one linear pass, as balanced markup of bounded depth.

The sanitiser (nh3, built on the html5ever parser) takes time that grows with the square of
the nesting: each new tag searches the open elements for one it might close, so 100,000
nested ``<blockquote>`` (2.3 MB) take most of a minute. And formatting tags left open are
reopened in every new paragraph, so 20 KB of them came out as 7 MB. Handing nh3 this
module's output instead keeps its work in proportion to the input:

- elements nested deeper than ``MAX_DEPTH`` lose their tags (their text stays);
- every element is closed explicitly, and a formatting element closed by something else
  than its own end tag is opened again once, for the text that follows, as browsers do;
- text and attribute values are escaped, so the parser reads exactly the tree built here,
  whatever this module made of broken markup.

This is not the sanitiser: tags, attributes and URLs pass through, and nh3 decides. The
reading follows the HTML standard's tree-building rules where they matter for ordinary
articles (a new paragraph or list item closes the open one, an end tag closes what it names,
a row gets its table body) and is simpler elsewhere. Comments, doctypes and processing
instructions are dropped.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urljoin

__all__ = ["MAX_DEPTH", "balanced_html"]

# Ordinary articles nest a dozen levels at most (a list in a quote in a table cell…).
MAX_DEPTH = 48

VOID = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr".split()
)
# Their content is text up to the matching end tag, never markup.
RAW_TEXT = frozenset("iframe noembed noframes noscript script style textarea title xmp".split())
# The standard's "special" elements: they stop the search for a list item to close.
SPECIAL = frozenset(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link "
    "listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext "
    "pre script search section select source style summary table tbody td template textarea "
    "tfoot th thead title tr track ul wbr xmp".split()
)
# An end tag or a search for an open element does not reach past these.
SCOPE = frozenset("applet caption html marquee object table td template th".split())
BUTTON_SCOPE = SCOPE | {"button"}
TABLE_SCOPE = frozenset("html table template".split())
# How far down an end tag looks for the element it closes (SCOPE for the rest).
END_TAG_SCOPE = {
    "p": BUTTON_SCOPE,
    "li": SCOPE | {"ol", "ul"},
    **{name: TABLE_SCOPE for name in SCOPE},
}
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# Resolved against the base address when one is given.
URL_ATTRIBUTES = frozenset({"href", "src"})
TABLE_SECTIONS = frozenset("tbody tfoot thead".split())
FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
# At most this many closed formatting elements are opened again. Browsers reopen them all (up
# to three alike); one is what ordinary sloppy markup needs, and more let tags multiply.
REOPEN_LIMIT = 1
# Start tags that do not open again the formatting elements a paragraph's end closed.
BLOCKS = SPECIAL - {
    "applet",
    "area",
    "br",
    "embed",
    "img",
    "input",
    "keygen",
    "marquee",
    "object",
    "wbr",
}
# Start tags that close an open paragraph.
CLOSES_P = HEADINGS | frozenset(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form header hgroup hr listing main menu nav ol p plaintext pre search "
    "section summary table ul xmp li dd dt".split()
)
# A new one closes the open one of these (searching down to, not past, the second set).
CLOSES_SIBLING = {
    "li": ({"li"}, SPECIAL - {"address", "div", "p"}),
    "dd": ({"dd", "dt"}, SPECIAL - {"address", "div", "p"}),
    "dt": ({"dd", "dt"}, SPECIAL - {"address", "div", "p"}),
    "a": ({"a"}, SCOPE),
    "td": ({"td", "th"}, frozenset("html table tbody template tfoot thead tr".split())),
    "th": ({"td", "th"}, frozenset("html table tbody template tfoot thead tr".split())),
    "tr": ({"tr"}, frozenset("html table tbody template tfoot thead".split())),
    "tbody": ({"tbody", "tfoot", "thead"}, frozenset("html table template".split())),
    "thead": ({"tbody", "tfoot", "thead"}, frozenset("html table template".split())),
    "tfoot": ({"tbody", "tfoot", "thead"}, frozenset("html table template".split())),
}

_SPACE = "\t\n\f\r "
# What starts markup: a start tag, an end tag, a comment, or another "<!", "<?" or "</"
# construct. Any other "<" is text.
# A tag without attributes is read whole here (">" captured), the commonest case.
_MARKUP = re.compile(
    r"<(?:([a-zA-Z][^\t\n\f\r />]*)(>)?|/([a-zA-Z][^\t\n\f\r />]*)(>)?|(!--)|[!?/])"
)
_BETWEEN_ATTRIBUTES = re.compile(r"[\t\n\f\r /]*")
# Called where the next character is none of whitespace, "/" or ">": it takes at least that.
_ATTRIBUTE_NAME = re.compile(r"(?s:.)[^\t\n\f\r />=]*")
_EQUALS = re.compile(r"[\t\n\f\r ]*=[\t\n\f\r ]*")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*")
_SAFE_NAME = re.compile(r"[a-z][a-z0-9_:.-]*\Z")
_RAW_TEXT_END = {name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in RAW_TEXT}

Attributes = list[tuple[str, str]]


def _escape_text(text: str) -> str:
    # "&" stays: character references mean the same after the rewrite as before it.
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _end_of(pattern: re.Pattern[str], source: str, pos: int) -> int:
    """Where a match of ``pattern`` (which may match nothing) from ``pos`` ends."""
    found = pattern.match(source, pos)
    return found.end() if found else pos


def _read_tag(source: str, pos: int) -> tuple[Attributes, int] | None:
    """The attributes of a tag whose name ends at ``pos`` and the position after its ``>``,
    or None when the document ends inside the tag (the standard drops such a tag and the rest).

    Quoted values may hold ``>``; every step moves forward, so this stays linear.
    """
    attributes: Attributes = []
    end = len(source)
    while True:
        pos = _end_of(_BETWEEN_ATTRIBUTES, source, pos)
        if pos >= end:
            return None
        if source[pos] == ">":
            return attributes, pos + 1
        name_end = _end_of(_ATTRIBUTE_NAME, source, pos)
        name, pos = source[pos:name_end].lower(), name_end
        value = ""
        equals = _EQUALS.match(source, pos)
        if equals is not None:
            pos = equals.end()
            if pos >= end:
                return None
            if source[pos] in "\"'":
                close = source.find(source[pos], pos + 1)
                if close < 0:
                    return None
                value, pos = source[pos + 1 : close], close + 1
            else:
                value_end = _end_of(_UNQUOTED, source, pos)
                value, pos = source[pos:value_end], value_end
        attributes.append((name, value))


def _start_tag(name: str, attributes: Attributes, base_url: str | None) -> str:
    if not attributes:
        return f"<{name}>"
    parts = [f"<{name}"]
    seen: set[str] = set()
    for attribute, value in attributes:
        # The first of a repeated attribute counts, as in the standard; names a browser would
        # not accept are left out (the sanitiser would drop them anyway).
        if attribute in seen or not _SAFE_NAME.match(attribute):
            continue
        seen.add(attribute)
        if base_url and attribute in URL_ATTRIBUTES:
            absolute = urljoin(base_url, html.unescape(value).strip())
            value = absolute.replace("&", "&amp;")
        parts.append(f' {attribute}="{value.replace(chr(34), "&quot;")}"')
    return "".join(parts) + ">"


class _Element(NamedTuple):
    name: str
    tag: str  # the start tag as written, to open it again


class _Builder:
    """The stack of open elements and the markup written so far."""

    def __init__(self, max_depth: int, base_url: str | None) -> None:
        self.max_depth = max_depth
        self.base_url = base_url
        self.open: list[_Element] = []
        # How many of each are open: most searches end here, without walking the stack.
        self.counts: Counter[str] = Counter()
        self.out: list[str] = []
        # Formatting elements closed by something else than their own end tag: browsers open
        # them again for the text that follows (``<p><b>bold</p>still bold``).
        self.reopen: list[_Element] = []

    def _find(self, names: Iterable[str], stop: Iterable[str]) -> int | None:
        """The index of the nearest open element named in ``names``, searching from the
        innermost and not past one named in ``stop``."""
        counts = self.counts
        if not any(counts[name] for name in names):
            return None
        for index in range(len(self.open) - 1, -1, -1):
            current = self.open[index].name
            if current in names:
                return index
            if current in stop:
                return None
        return None

    def _close_to(self, index: int) -> None:
        """Close the element at ``index`` and everything inside it."""
        closed = self.open[index:]
        del self.open[index:]
        self.counts.subtract(element.name for element in closed)
        self.out.extend(f"</{element.name}>" for element in reversed(closed))
        if any(element.name in SCOPE for element in closed):
            # Leaving a table cell (or the like) ends what was opened inside it.
            self.reopen.clear()
            return
        inner = [element for element in closed[1:] if element.name in FORMATTING]
        self.reopen = (self.reopen + inner)[-REOPEN_LIMIT:]

    def _reopen(self) -> None:
        pending, self.reopen = self.reopen, []
        for element in pending:
            self._push(element)

    def _push(self, element: _Element) -> None:
        if len(self.open) < self.max_depth:
            self.out.append(element.tag)
            self.open.append(element)
            self.counts[element.name] += 1

    def close_implied(self, name: str) -> None:
        """Close what a new ``name`` element implicitly ends."""
        if name in CLOSES_P:
            found = self._find({"p"}, BUTTON_SCOPE)
            if found is not None:
                self._close_to(found)
        if name in CLOSES_SIBLING:
            names, stop = CLOSES_SIBLING[name]
            found = self._find(names, stop)
            if found is not None:
                self._close_to(found)
        if name in HEADINGS and self.open and self.open[-1].name in HEADINGS:
            self._close_to(len(self.open) - 1)

    def _open_implied_parents(self, name: str) -> None:
        # A row straight in a table gets a body, and a cell a row, as browsers build them:
        # written out here so that the depth counted is the depth the sanitiser sees.
        current = self.open[-1].name if self.open else None
        if name in ("tr", "td", "th") and current == "table":
            self._push(_Element("tbody", "<tbody>"))
            current = "tbody"
        if name in ("td", "th") and current in TABLE_SECTIONS:
            self._push(_Element("tr", "<tr>"))

    def start(self, name: str, attributes: Attributes) -> None:
        if not _SAFE_NAME.match(name):
            return  # not an element a browser would make; its content stays
        self.close_implied(name)
        if name not in BLOCKS:
            self._reopen()
        self._open_implied_parents(name)
        tag = _start_tag(name, attributes, self.base_url)
        if name in VOID:
            self.out.append(tag)
        else:
            self._push(_Element(name, tag))

    def raw_text(self, name: str, attributes: Attributes, text: str) -> None:
        # A leaf holding only text: written whole, even past the depth limit, so that a
        # script's code never turns into visible text.
        self.close_implied(name)
        tag = _start_tag(name, attributes, self.base_url)
        self.out.append(f"{tag}{_escape_text(text)}</{name}>")

    def end(self, name: str) -> None:
        if name == "br":
            self.start("br", [])  # as browsers read </br>
            return
        self.reopen = [element for element in self.reopen if element.name != name]
        found = self._find({name}, END_TAG_SCOPE.get(name, SCOPE))
        if found is not None:
            self._close_to(found)

    def text(self, text: str) -> None:
        if text:
            self._reopen()
            self.out.append(_escape_text(text))

    def finish(self) -> str:
        self.reopen.clear()
        if self.open:
            self._close_to(0)
        return "".join(self.out)


def _skip_to(source: str, marker: str, pos: int) -> int:
    found = source.find(marker, pos)
    return len(source) if found < 0 else found + len(marker)


def _comment_end(source: str, pos: int) -> int:
    """The position after a comment that opens (``<!--``) at ``pos``."""
    body = pos + 4
    if source.startswith(">", body):
        return body + 1
    if source.startswith("->", body):
        return body + 2
    ends = [found for found in (source.find("-->", body), source.find("--!>", body)) if found >= 0]
    if not ends:
        return len(source)
    first = min(ends)
    return first + (3 if source.startswith("-->", first) else 4)


def balanced_html(fragment: str, max_depth: int = MAX_DEPTH, base_url: str | None = None) -> str:
    """``fragment`` as balanced, escaped markup at most ``max_depth`` elements deep; with
    ``base_url``, relative ``href`` and ``src`` addresses are made absolute against it."""
    builder = _Builder(max_depth, base_url)
    source = fragment
    end = len(source)
    pos = 0
    while pos < end:
        found = _MARKUP.search(source, pos)
        if found is None:
            builder.text(source[pos:])
            break
        builder.text(source[pos : found.start()])
        start_name, start_closed, end_name, end_closed, comment = found.groups()
        pos = found.end()
        attributes: Attributes = []
        if (start_name is not None and not start_closed) or (end_name and not end_closed):
            tag = _read_tag(source, pos)
            if tag is None:
                break  # the document ends inside a tag
            attributes, pos = tag
        if end_name is not None:
            builder.end(end_name.lower())
        elif start_name is not None:
            name = start_name.lower()
            if name in RAW_TEXT:
                closing = _RAW_TEXT_END[name].search(source, pos)
                stop = closing.start() if closing else end
                builder.raw_text(name, attributes, source[pos:stop])
                pos = _skip_to(source, ">", stop) if closing else end
            elif name == "plaintext":
                # Everything after it is text: written as such, without the element.
                builder.close_implied(name)
                builder.text(source[pos:])
                break
            else:
                builder.start(name, attributes)
        elif comment is not None:
            pos = _comment_end(source, found.start())
        else:
            # A doctype, a processing instruction, CDATA or a broken end tag: dropped up to
            # the next ">", as the standard reads them.
            pos = _skip_to(source, ">", found.start())
    return builder.finish()
