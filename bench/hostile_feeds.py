"""How long reading a hostile feed takes: 10 MiB (the import's size limit) of markup made to
be slow, in RSS and JSON Feed.

Each case is one article whose body repeats a pattern up to the size; the figure is the CPU
time of ``parse_feed`` (reading, sanitising, the summary). Nothing touches a database.

    .venv/bin/python bench/hostile_feeds.py [--mib 10] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from xml.sax.saxutils import escape

from newsletter.feeds import FeedError, parse_feed

# name: (what opens, what closes); the body is opening * n + "text" + closing * n.
PATTERNS = {
    "nested blockquote": ("<blockquote>", "</blockquote>"),
    "nested div": ("<div>", "</div>"),
    "nested list": ("<ul><li>", "</li></ul>"),
    "nested table": ("<table><tr><td>", "</td></tr></table>"),
    "span, stray end tags": ("<span>", "</x>"),
    "misnested formatting": ('<p><b title="t">', "</p><p>x</p>"),
    "unclosed comments": ("<!--", ""),
    "quoted attributes": ('<a title="a>b" href="https://example.org/">', "</a>"),
}


def body(opening: str, closing: str, size: int) -> str:
    repeat = max(1, (size - 4) // (len(opening) + len(closing)))
    return opening * repeat + "text" + closing * repeat


def rss(content: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        "<item><title>a</title><link>https://example.org/a</link>"
        f"<content:encoded>{escape(content)}</content:encoded></item></channel></rss>"
    ).encode()


def json_feed(content: str) -> bytes:
    item = {"id": "a", "url": "https://example.org/a", "content_html": content}
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [item]}
    return json.dumps(document).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=10, help="size of each feed in MiB")
    parser.add_argument("--only", help="run only the patterns whose name contains this")
    args = parser.parse_args()
    size = int(args.mib * 1024 * 1024)
    print(f"Python {platform.python_version()} on {platform.machine()}, {args.mib:g} MiB each")
    print(f"{'pattern':<24} {'format':<6} {'CPU s':>7}  result")
    slowest = 0.0
    for name, (opening, closing) in PATTERNS.items():
        if args.only and args.only not in name:
            continue
        # The RSS body is escaped, so it grows: keep the feed itself near the size.
        content = body(opening, closing, size * 2 // 3)
        for label, data in (("RSS", rss(content)), ("JSON", json_feed(content))):
            started = time.process_time()
            try:
                entry = parse_feed(data).entries[0]
                result = f"{len(entry.body_html):,} characters kept"
            except FeedError as error:
                result = f"refused: {error}"
            seconds = time.process_time() - started
            slowest = max(slowest, seconds)
            print(f"{name:<24} {label:<6} {seconds:7.2f}  {result}", flush=True)
    print(f"slowest: {slowest:.2f} s")
    sys.exit(0)


if __name__ == "__main__":
    main()
