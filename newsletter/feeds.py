"""Reading a news feed (RSS 2.0, Atom, JSON Feed 1.1) from a file or an http(s) URL.

The only thing ever fetched is the source itself, with a time limit and a size limit, and
only from public addresses (``newsletter.outbound``); URLs inside the feed (images, links)
are kept as text and never requested. The result is plain
``FeedEntry`` records whose HTML is already sanitised, so nothing downstream handles raw feed
markup.
"""

from __future__ import annotations

import http.client
import io
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser

from newsletter.categories import unique_categories
from newsletter.outbound import PUBLIC_ONLY, AddressPolicy, ForbiddenAddress, guarded_handlers
from newsletter.sanitise import clean_html, first_paragraph, plain_text, shorten, unescape_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "Feed",
    "FeedEntry",
    "FeedError",
    "ForbiddenFeedAddress",
    "load_feed",
    "parse_feed",
    "read_source",
]

DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
URL_LENGTH = 2048
TITLE_LENGTH = 500
ALT_LENGTH = 500
WEB_SCHEMES = ("http", "https")
LEADING_SPACE = b"\xef\xbb\xbf \t\r\n"
USER_AGENT = "newsletter-feed-import/1.0"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Problems feedparser reports that do not make a feed unreadable: a wrong declared encoding,
# a web server's odd Content-Type, or an HTML entity such as &nbsp; that XML does not define.
HARMLESS_PROBLEMS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


class FeedError(ValueError):
    """The source cannot be read, or is not a usable feed; the message says which and why."""


class ForbiddenFeedAddress(FeedError):
    """The source, or an address it redirects to, is on this machine or a private network."""


@dataclass(frozen=True)
class FeedEntry:
    """One article as the feed describes it, with HTML already sanitised."""

    guid: str
    url: str
    title: str
    summary: str
    body_html: str
    image_url: str | None
    image_alt: str | None
    published_at: datetime | None
    # As the feed gives them (RSS <category>, Atom category term or label, JSON Feed tags),
    # cleaned, one spelling of each.
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feed:
    title: str
    entries: tuple[FeedEntry, ...]


def load_feed(
    source: str,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    policy: AddressPolicy = PUBLIC_ONLY,
) -> Feed:
    """Read and parse ``source`` (a file path or an http(s) URL); raise :class:`FeedError`.

    A URL, and every address it redirects to, must be public or in ``policy``'s allowed
    networks (:class:`ForbiddenFeedAddress` otherwise).
    """
    data, base_url = read_source(source, timeout, max_bytes, policy)
    return parse_feed(data, base_url)


def read_source(
    source: str,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    policy: AddressPolicy = PUBLIC_ONLY,
) -> tuple[bytes, str | None]:
    """The bytes of ``source`` and, for a URL, the address they came from (for relative links)."""
    try:
        scheme = urlsplit(source).scheme.lower()
    except ValueError as error:  # an unclosed IPv6 bracket: "https://[::1/feed.xml"
        raise FeedError(f"not a web address that can be fetched ({error})") from None
    if scheme in WEB_SCHEMES:
        return _fetch(source, timeout, max_bytes, policy)
    if "://" in source:
        raise FeedError("only http:// and https:// addresses or file paths can be imported")
    return _read_file(Path(source).expanduser(), max_bytes), None


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise FeedError("no such file") from None
    except IsADirectoryError:
        raise FeedError("this is a folder, not a feed file") from None
    except OSError as error:
        raise FeedError(f"cannot read the file: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise FeedError(f"the file is larger than the limit of {max_bytes:,} bytes")
    return data


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a few redirects, and only to other http(s) addresses; remembers the last."""

    max_redirections = MAX_REDIRECTS

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme.lower() not in WEB_SCHEMES:
            raise FeedError(f"the server redirected to {newurl!r}, which is not an http(s) address")
        self.last = newurl
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, timeout: float, max_bytes: int, policy: AddressPolicy) -> tuple[bytes, str]:
    redirects = _WebOnlyRedirects()
    opener = urllib.request.build_opener(*guarded_handlers(policy), redirects)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": ACCEPT})
    # The socket timeout bounds each wait; the deadline bounds the whole download, so a server
    # that trickles one byte at a time cannot hold the import for ever.
    deadline = time.monotonic() + timeout
    too_slow = f"no complete answer within {timeout:g} seconds"
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FeedError(f"the feed is larger than the limit of {max_bytes:,} bytes")
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise FeedError(too_slow)
                chunk = response.read1(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"the feed is larger than the limit of {max_bytes:,} bytes")
                chunks.append(chunk)
            final_url = response.geturl()
    except urllib.error.HTTPError as error:
        raise FeedError(f"the server answered {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, ForbiddenAddress):
            where = f"the server redirected to {redirects.last!r}, and " if redirects.last else ""
            message = f"{where}{error.reason}; feeds are downloaded from public addresses only"
            raise ForbiddenFeedAddress(message) from None
        if isinstance(error.reason, TimeoutError):
            raise FeedError(too_slow) from None
        raise FeedError(f"cannot reach the server: {error.reason}") from None
    except TimeoutError:
        raise FeedError(too_slow) from None
    except (OSError, http.client.HTTPException) as error:
        raise FeedError(f"the download failed: {error}") from None
    except FeedError:
        raise
    except ValueError as error:
        # urllib's parsing and the IDNA encoding of the host name (a label over 63
        # characters) raise ValueError for an address no request can be made to.
        raise FeedError(f"not a web address that can be fetched ({error})") from None
    return b"".join(chunks), final_url


def parse_feed(data: bytes, base_url: str | None = None) -> Feed:
    """Parse RSS, Atom or JSON Feed bytes into sanitised entries; raise :class:`FeedError`."""
    start = data.lstrip(LEADING_SPACE)
    if not start:
        raise FeedError("the source is empty")
    if start.startswith(b"{"):
        try:
            title, entries = _parse_json_feed(data, base_url)
        except RecursionError:
            # Python reads JSON recursively: 10 KB of "[" is enough to exhaust the stack.
            raise FeedError("the JSON is nested too deeply to read") from None
    else:
        title, entries = _parse_xml_feed(data, base_url)
    if not entries:
        raise FeedError("the feed has no articles")
    return Feed(title=title, entries=tuple(_first_of_each_guid(entries)))


def _first_of_each_guid(entries: list[FeedEntry]) -> list[FeedEntry]:
    """A guid repeated in one feed is one article; feeds list the newest version first."""
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.guid not in seen:
            seen.add(entry.guid)
            unique.append(entry)
    return unique


def _parse_xml_feed(data: bytes, base_url: str | None) -> tuple[str, list[FeedEntry]]:
    headers = {"content-location": base_url} if base_url else {}
    # A stream, never a string: feedparser treats a string as a URL or path to open. Its own
    # HTML handling is off: ``clean_html`` sanitises and resolves links for every format in
    # one linear pass, where feedparser's sanitiser takes quadratic time over an unclosed
    # comment ("<!--" repeated) and its link resolver reads the markup once more.
    parsed = feedparser.parse(
        io.BytesIO(data), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not parsed.get("version"):
        detail = f" ({_describe(problem, data)})" if problem else ""
        raise FeedError(f"not an RSS, Atom or JSON feed{detail}")
    if problem is not None and not _harmless(problem):
        raise FeedError(f"not a well-formed RSS or Atom feed ({_describe(problem, data)})")
    title = _text(parsed.feed.get("title_detail")) or "(untitled feed)"
    # A feed read from a file has no address of its own: its site's link resolves relative links.
    base = base_url or _web_url(parsed.feed.get("link"), None) or None
    entries = [_xml_entry(number, item, base) for number, item in enumerate(parsed.entries, 1)]
    return title, entries


def _describe(problem: object, data: bytes) -> str:
    if isinstance(problem, SAXParseException):
        line, column = problem.getLineNumber() or 0, problem.getColumnNumber() or 0
        # feedparser puts an XML declaration on a line of its own before a feed without one.
        if line > 1 and not data.lstrip(LEADING_SPACE).startswith(b"<?xml"):
            line -= 1
        return f"line {line}, column {column}: {problem.getMessage()}"
    return str(problem)


def _harmless(problem: object) -> bool:
    if isinstance(problem, HARMLESS_PROBLEMS):
        return True
    return "undefined entity" in str(problem)


def _text(detail: Any) -> str:
    """A feed text construct as plain text, whether it was declared text or HTML."""
    if not detail or not detail.get("value"):
        return ""
    value = str(detail["value"])
    if "html" in str(detail.get("type", "")):
        return unescape_text(value)
    return " ".join(value.split())


def _xml_entry(number: int, item: Any, base: str | None) -> FeedEntry:
    title = _text(item.get("title_detail"))
    link = _web_url(item.get("link"), base)
    guid = str(item.get("id") or "").strip() or link
    contents = [c for c in item.get("content", []) if "html" in str(c.get("type", ""))]
    contents = contents or list(item.get("content", []))
    body_source = str(contents[0].get("value", "")) if contents else ""
    # feedparser gives each text the address it is relative to (xml:base, else the feed's).
    body_base = _web_url(contents[0].get("base"), None) if contents else ""
    summary_source = str(item.get("summary") or "")
    if not body_source:
        body_source = summary_source
        body_base = _web_url(item.get("summary_detail", {}).get("base"), None)
    # feedparser copies the body into the summary when a feed gives no separate summary.
    if summary_source == body_source:
        summary_source = ""
    when = item.get("published_parsed") or item.get("updated_parsed")
    published = datetime(*when[:6]).replace(tzinfo=UTC) if when else None
    return _entry(
        number,
        guid=guid,
        link=link,
        title=title,
        base=body_base or base,
        body_html=body_source,
        summary_html=summary_source,
        image_url=_xml_image(item),
        image_alt=None,
        published_at=published,
        categories=unique_categories(_xml_category(tag) for tag in item.get("tags") or []),
    )


def _xml_category(tag: Any) -> object:
    """An RSS ``<category>``'s text or an Atom category's term, else its label."""
    if not hasattr(tag, "get"):
        return None
    return tag.get("term") or tag.get("label")


def _xml_image(item: Any) -> str:
    """The article's picture from Media RSS or an image enclosure ("" when it has none)."""
    candidates: list[str] = []
    for thumbnail in item.get("media_thumbnail", []):
        candidates.append(str(thumbnail.get("url", "")))
    for media in item.get("media_content", []):
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            candidates.append(str(media.get("url", "")))
    for enclosure in item.get("enclosures", []):
        if str(enclosure.get("type", "")).startswith("image/"):
            candidates.append(str(enclosure.get("href", "")))
    for candidate in candidates:
        url = _web_url(candidate, None)
        if url:
            return url
    return ""


def _parse_json_feed(data: bytes, base_url: str | None) -> tuple[str, list[FeedEntry]]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise FeedError(f"not valid JSON ({error})") from None
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(
        "https://jsonfeed.org/version/1"
    ):
        raise FeedError("JSON, but not a JSON Feed (no https://jsonfeed.org/version/1 version)")
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedError("not a well-formed JSON Feed (items must be a list)")
    base = _web_url(document.get("feed_url"), base_url) or base_url
    base = _web_url(document.get("home_page_url"), base) or base
    title = " ".join(str(document.get("title") or "").split()) or "(untitled feed)"
    entries = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise FeedError(f"not a well-formed JSON Feed (item {number} is not an object)")
        entries.append(_json_entry(number, item, base))
    return title, entries


def _json_entry(number: int, item: dict[str, Any], base: str | None) -> FeedEntry:
    link = _web_url(item.get("url"), base) or _web_url(item.get("external_url"), base)
    guid = str(item.get("id") or "").strip() or link
    body = str(item.get("content_html") or "")
    if not body and item.get("content_text"):
        body = "".join(
            f"<p>{_escape(block)}</p>" for block in str(item["content_text"]).split("\n\n")
        )
    image = _web_url(item.get("image"), base) or _web_url(item.get("banner_image"), base)
    return _entry(
        number,
        guid=guid,
        link=link,
        title=" ".join(str(item.get("title") or "").split()),
        base=base,
        body_html=body,
        summary_html=_escape(str(item.get("summary") or "")),
        image_url=image,
        image_alt=None,
        published_at=_rfc3339(number, item.get("date_published") or item.get("date_modified")),
        categories=unique_categories(tags if isinstance(tags := item.get("tags"), list) else []),
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rfc3339(number: int, value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise FeedError(f"item {number}: cannot read the date {value!r}") from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _web_url(value: Any, base: str | None) -> str:
    """An absolute http(s) URL, or "" for anything else (javascript:, data:, mailto:…)."""
    if not value or not isinstance(value, str):
        return ""
    url = urljoin(base, value.strip()) if base else value.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.netloc:
        return ""
    if any(char.isspace() or not char.isprintable() for char in url):
        return ""
    return url


def _entry(
    number: int,
    *,
    guid: str,
    link: str,
    title: str,
    base: str | None,
    body_html: str,
    summary_html: str,
    image_url: str | None,
    image_alt: str | None,
    published_at: datetime | None,
    categories: tuple[str, ...],
) -> FeedEntry:
    body = clean_html(body_html, base_url=base)
    summary = shorten(plain_text(summary_html) or first_paragraph(body, sanitised=True))
    title = title or shorten(plain_text(body, sanitised=True), 80) or "(untitled)"
    if not link:
        raise FeedError(f"article {number} ({shorten(title, 60)!r}) has no http(s) link")
    if len(guid) > URL_LENGTH or len(link) > URL_LENGTH:
        raise FeedError(f"article {number} has an id or link over {URL_LENGTH} characters")
    if image_url and len(image_url) > URL_LENGTH:
        image_url = None
    return FeedEntry(
        guid=guid,
        url=link,
        title=shorten(title, TITLE_LENGTH),
        summary=summary,
        body_html=body,
        image_url=image_url or None,
        image_alt=shorten(image_alt, ALT_LENGTH) if image_alt else None,
        published_at=published_at,
        categories=categories,
    )
