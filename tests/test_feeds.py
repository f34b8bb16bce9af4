"""Reading feeds: formats, broken and hostile feeds, and the limits on fetching a URL."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest

from newsletter.balanced_html import MAX_DEPTH
from newsletter.feeds import FeedError, ForbiddenFeedAddress, load_feed, parse_feed, read_source
from newsletter.outbound import AddressPolicy
from tests.support.feeds import Item, atom, feed_server, json_feed, rss
from tests.support.smtp import free_port

LOOPBACK_ONE = AddressPolicy(allowed=(ip_network("127.0.0.1/32"),))
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feed.xml"
WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = (
    '<p onclick="steal()">Dear <b>friends</b>, <script>alert("x")</script>read this.</p>'
    '<img src="https://example.org/a.png" onerror="alert(1)" alt="A picture">'
    '<p><a href="javascript:alert(1)">click</a> <a href="https://example.org/ok">ok</a></p>'
    '<iframe src="https://evil.example/"></iframe>'
    '<form action="https://evil.example/"><input name="password"></form>'
    "<style>body { display: none }</style>"
    "<p>{{ config }} {% for x in range(9) %}loop{% endfor %}</p>"
)


def test_rss_sample_feed() -> None:
    feed = load_feed(str(EXAMPLE))
    assert feed.title == "Harbourside Rights Trust – News"
    assert len(feed.entries) == 6
    first = feed.entries[0]
    assert first.guid == "hrt-news-2025-0328"
    assert first.url == "https://example.org/news/2025/03/millbrook-lane-eviction-halted"
    assert first.title == "Court halts the eviction of 41 families from Millbrook Lane"
    assert first.published_at == datetime(2025, 3, 28, 9, 0, tzinfo=UTC)
    assert first.summary.startswith("The district court ordered the council")
    assert "<p>" not in first.summary
    assert first.body_html.count("<p>") == 3
    assert first.image_url == "https://example.org/media/millbrook-lane.jpg"
    assert feed.entries[1].image_url is None


def test_rss_without_description_takes_the_first_paragraph() -> None:
    item = Item(
        "a", "Title", WHEN, content="<h2>Heading</h2><p>First <em>para</em>.</p><p>Second.</p>"
    )
    [entry] = parse_feed(rss([item])).entries
    assert entry.summary == "Heading"
    item.content = "<p>First <em>para</em>.</p><p>Second.</p>"
    [entry] = parse_feed(rss([item])).entries
    assert entry.summary == "First para."
    assert entry.body_html == "<p>First <em>para</em>.</p><p>Second.</p>"


def test_long_summary_is_shortened_at_a_word() -> None:
    words = " ".join(["solidarity"] * 100)
    [entry] = parse_feed(rss([Item("a", "T", WHEN, description=words)])).entries
    assert len(entry.summary) <= 400
    assert entry.summary.endswith("solidarity…")


def test_atom_feed() -> None:
    items = [
        Item(
            "urn:uuid:1",
            "Tom & Jerry win <appeal>",
            WHEN,
            link="https://example.org/a",
            description="<p>Short <b>summary</b>.</p>",
            content="<p>Long body.</p><p>More.</p>",
        ),
        Item("urn:uuid:2", "Second", WHEN.replace(day=2), link="https://example.org/b"),
    ]
    feed = parse_feed(atom(items, title="Atom news"))
    assert feed.title == "Atom news"
    first, second = feed.entries
    assert first.guid == "urn:uuid:1"
    assert first.title == "Tom & Jerry win <appeal>"
    assert first.summary == "Short summary."
    assert first.body_html == "<p>Long body.</p><p>More.</p>"
    assert first.published_at == WHEN
    assert second.url == "https://example.org/b"


def test_json_feed() -> None:
    items = [
        {
            "id": "j1",
            "url": "https://example.org/j1",
            "title": "JSON article",
            "content_html": "<p>Body <script>x()</script>text.</p>",
            "summary": "A <summary> in plain text",
            "image": "https://example.org/j1.jpg",
            "date_published": "2025-03-02T10:00:00+01:00",
        },
        {
            "id": 2,
            "url": "/relative/j2",
            "content_text": "First paragraph.\n\nSecond paragraph.",
            "date_modified": "2025-03-01T08:00:00Z",
        },
    ]
    feed = parse_feed(json_feed(items, title="JSON news"))
    assert feed.title == "JSON news"
    first, second = feed.entries
    assert first.summary == "A <summary> in plain text"
    assert first.body_html == "<p>Body text.</p>"
    assert first.image_url == "https://example.org/j1.jpg"
    assert first.published_at == datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
    assert second.guid == "2"
    assert second.url == "https://example.org/relative/j2"
    assert second.title == "First paragraph. Second paragraph."
    assert second.summary == "First paragraph."
    assert second.body_html == "<p>First paragraph.</p><p>Second paragraph.</p>"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the source is empty"),
        (b"  \n\t", "the source is empty"),
        (b'<rss version="2.0"><channel><title>x</title><item><title>a</item>', "well-formed"),
        (b"<html><body><p>A web page</p></body></html>", "not an RSS, Atom or JSON feed"),
        (b"plain words, not a feed", "not an RSS, Atom or JSON feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
        (b'{"hello": "world"}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "items must be a list"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [3]}', "not an object"),
    ],
)
def test_malformed_feeds_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(data)


def nested_json(depth: int, where: str = "items") -> bytes:
    """A JSON Feed with arrays nested ``depth`` deep as its items, or in one item's field."""
    deep = "[" * depth + "]" * depth
    if where == "items":
        return f'{{"version": "https://jsonfeed.org/version/1.1", "items": {deep}}}'.encode()
    item = f'{{"url": "https://example.org/a", "{where}": {deep}}}'
    return f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{item}]}}'.encode()


@pytest.mark.parametrize("where", ["items", "title", "content_html"])
def test_deeply_nested_json_is_one_error(where: str) -> None:
    # 5,000 levels take 10 KB; Python's JSON reader gives up past about a thousand.
    with pytest.raises(FeedError, match="^the JSON is nested too deeply to read$"):
        parse_feed(nested_json(5_000, where))


def test_relative_links_in_articles_are_made_absolute() -> None:
    content = '<p><a href="/news/b?x=1&amp;y=2">b</a> <img src="pic.png" alt="p"></p>'
    expected = (
        '<p><a href="{base}/news/b?x=1&amp;y=2" rel="noopener noreferrer">b</a> '
        '<img src="{base}/feeds/pic.png" alt="p"></p>'
    )
    item = Item("a", "A", WHEN, content=content)
    for data in (rss([item]), atom([item])):
        [entry] = parse_feed(data, "https://example.net/feeds/all.xml").entries
        assert entry.body_html == expected.format(base="https://example.net")
    # Read from a file, they resolve against the feed's site, like the article links.
    [entry] = parse_feed(rss([item])).entries
    assert entry.body_html == expected.format(base="https://example.org").replace("/feeds", "")
    # An Atom text's own xml:base comes first.
    based = atom([item]).replace(
        b'<content type="html">', b'<content type="html" xml:base="https://example.com/blog/">'
    )
    [entry] = parse_feed(based, "https://example.net/feeds/all.xml").entries
    assert 'href="https://example.com/news/b?x=1&amp;y=2"' in entry.body_html
    assert 'src="https://example.com/blog/pic.png"' in entry.body_html


def test_deeply_nested_feed_content_is_capped() -> None:
    levels = 20_000
    deep = "<blockquote>" * levels + "<p>At the bottom.</p>" + "</blockquote>" * levels
    for data in (
        rss([Item("r", "RSS", WHEN, content=deep)]),
        atom([Item("a", "Atom", WHEN, content=deep)]),
        json_feed([{"id": "j", "url": "https://example.org/j", "content_html": deep}]),
    ):
        [entry] = parse_feed(data).entries
        assert entry.body_html.count("<blockquote>") == MAX_DEPTH
        assert entry.body_html.endswith("At the bottom." + "</blockquote>" * MAX_DEPTH)
        assert entry.summary == "At the bottom."


def test_malformed_feed_error_names_the_line() -> None:
    body = (
        b'<rss version="2.0">\n<channel><title>x</title>\n<item><title>a</item>\n</channel></rss>'
    )
    with pytest.raises(FeedError, match=r"\(line 3, column 16: mismatched tag\)"):
        parse_feed(body)
    with pytest.raises(FeedError, match=r"\(line 4, column 16: mismatched tag\)"):
        parse_feed(b'<?xml version="1.0" encoding="UTF-8"?>\n' + body)


def test_empty_feeds_are_refused() -> None:
    with pytest.raises(FeedError, match="the feed has no articles"):
        parse_feed(rss([]))
    with pytest.raises(FeedError, match="the feed has no articles"):
        parse_feed(atom([]))
    with pytest.raises(FeedError, match="the feed has no articles"):
        parse_feed(json_feed([]))


def test_html_entities_common_in_real_feeds_are_accepted() -> None:
    data = rss([Item("a", "Title", WHEN, description="x")]).replace(
        b"<title>Title</title>", b"<title>Rights&nbsp;now</title>"
    )
    [entry] = parse_feed(data).entries
    assert entry.title == "Rights now"


def test_bad_json_feed_date_is_refused() -> None:
    item = {"id": "1", "url": "https://example.org/1", "date_published": "last Tuesday"}
    with pytest.raises(FeedError, match="cannot read the date 'last Tuesday'"):
        parse_feed(json_feed([item]))


def test_duplicate_guids_keep_the_first_entry() -> None:
    items = [
        Item("same", "Newest version", WHEN.replace(day=3)),
        Item("other", "Other", WHEN.replace(day=2)),
        Item("same", "Older version", WHEN.replace(day=1)),
    ]
    entries = parse_feed(rss(items)).entries
    assert [entry.guid for entry in entries] == ["same", "other"]
    assert entries[0].title == "Newest version"


def test_entry_without_guid_is_known_by_its_link() -> None:
    data = rss([Item("x", "T", WHEN)]).replace(b'<guid isPermaLink="false">x</guid>', b"")
    [entry] = parse_feed(data).entries
    assert entry.guid == "https://example.org/news/x"


def test_hostile_content_is_sanitised() -> None:
    item = Item(
        "h",
        "{{ config }} {% if 1 %}title{% endif %}",
        WHEN,
        content=HOSTILE,
        image="javascript:alert(1)",
    )
    [entry] = parse_feed(rss([item])).entries
    body = entry.body_html
    for forbidden in ("<script", "alert", "onclick", "onerror", "javascript:", "<iframe"):
        assert forbidden not in body
    for forbidden in ("<form", "<input", "<style", "display: none", "steal"):
        assert forbidden not in body
    assert '<a href="https://example.org/ok" rel="noopener noreferrer">ok</a>' in body
    assert '<img src="https://example.org/a.png" alt="A picture">' in body
    # Template syntax is kept as the text it is; it is never evaluated anywhere.
    assert "{{ config }} {% for x in range(9) %}loop{% endfor %}" in body
    assert entry.title == "{{ config }} {% if 1 %}title{% endif %}"
    assert entry.summary == "Dear friends, read this."
    assert entry.image_url is None


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,hi", "mailto:a@b.c"])
def test_article_link_must_be_a_web_address(link: str) -> None:
    item = Item("a", "Bad link", WHEN, link=link)
    with pytest.raises(FeedError, match=r"article 1 \('Bad link'\) has no http\(s\) link"):
        parse_feed(rss([item]))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file"):
        load_feed(str(tmp_path / "nope.xml"))
    with pytest.raises(FeedError, match="a folder"):
        load_feed(str(tmp_path))


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(rss([Item("a", "T", WHEN, description="x" * 5000)]))
    with pytest.raises(FeedError, match="larger than the limit of 1,000 bytes"):
        load_feed(str(path), max_bytes=1000)


@pytest.mark.parametrize(
    "source", ["file:///etc/passwd", "ftp://example.org/feed.xml", "gopher://x/1"]
)
def test_only_web_addresses_and_paths(source: str) -> None:
    with pytest.raises(FeedError, match=r"only http:// and https:// addresses"):
        read_source(source)


@pytest.mark.parametrize(
    "source",
    ["https://[::1/feed.xml", "http://[v1.x/", f"https://{'a' * 300}.example.org/feed.xml"],
)
def test_an_address_that_cannot_be_read_is_a_feed_error(source: str) -> None:
    # An unclosed IPv6 bracket or a host label past 63 characters: refused as a feed
    # problem (one warning in ``digest auto``, one error line in ``articles import``).
    with pytest.raises(FeedError, match=r"not a web address that can be fetched"):
        read_source(source)


def test_feed_from_a_url_resolves_relative_links() -> None:
    data = rss([Item("a", "Relative", WHEN, link="/news/a")])
    with feed_server() as server:
        url = server.serve("/feed.xml", data)
        feed = load_feed(url, policy=server.policy)
        assert server.requests == ["/feed.xml"]
    assert feed.entries[0].url == f"{server.base}/news/a"


def test_feed_file_resolves_relative_links_against_its_site(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss([Item("a", "Relative", WHEN, link="/news/a")]))
    assert load_feed(str(path)).entries[0].url == "https://example.org/news/a"


def test_json_feed_from_a_url() -> None:
    data = json_feed([{"id": "1", "url": "https://example.org/1", "title": "T"}])
    with feed_server() as server:
        url = server.serve("/feed.json", data, "application/feed+json")
        feed = load_feed(url, policy=server.policy)
    assert [entry.title for entry in feed.entries] == ["T"]


def test_nothing_inside_the_feed_is_fetched() -> None:
    with feed_server() as server:
        image = server.url("/image.png")
        link = server.url("/article")
        content = f'<p><img src="{image}" alt="x"><a href="{link}">more</a></p>'
        data = rss([Item("a", "T", WHEN, link=link, content=content, image=image)])
        feed = load_feed(server.serve("/feed.xml", data), policy=server.policy)
        assert server.requests == ["/feed.xml"]
    assert feed.entries[0].image_url == image


def test_slow_url_times_out() -> None:
    with feed_server() as server:
        url = server.trickle("/slow.xml", seconds=30)
        started = time.monotonic()
        with pytest.raises(FeedError, match="no complete answer within 1 seconds"):
            load_feed(url, timeout=1, policy=server.policy)
        # The deadline covers the whole download, not each trickled byte.
        assert time.monotonic() - started < 10


def test_silent_url_times_out() -> None:
    with feed_server() as server:
        url = server.silent("/silent.xml", seconds=30)
        with pytest.raises(FeedError, match="no complete answer within 0.5 seconds"):
            load_feed(url, timeout=0.5, policy=server.policy)


def test_huge_url_is_cut_off() -> None:
    with feed_server() as server:
        url = server.endless("/huge.xml", total=50_000_000)
        with pytest.raises(FeedError, match="larger than the limit of 1,000,000 bytes"):
            load_feed(url, max_bytes=1_000_000, policy=server.policy)


def test_huge_declared_length_is_refused_before_downloading() -> None:
    with feed_server() as server:
        url = server.endless("/declared.xml", total=10_000_000, declare=900_000_000)
        with pytest.raises(FeedError, match="larger than the limit"):
            load_feed(url, max_bytes=1_000_000, policy=server.policy)


def test_http_error_status() -> None:
    with feed_server() as server, pytest.raises(FeedError, match="the server answered 404"):
        load_feed(server.url("/missing.xml"), policy=server.policy)


def test_unreachable_url() -> None:
    with pytest.raises(FeedError, match="cannot reach the server"):
        load_feed(f"http://127.0.0.1:{free_port()}/feed.xml", timeout=5, policy=LOOPBACK_ONE)


@pytest.mark.parametrize(
    ("location", "message"),
    [("file:///etc/passwd", "is not allowed"), ("ftp://127.0.0.1/feed.xml", "not an http")],
)
def test_redirect_away_from_the_web_is_refused(location: str, message: str) -> None:
    with feed_server() as server:
        url = server.redirect("/moved.xml", location)
        with pytest.raises(FeedError, match=message):
            load_feed(url, policy=server.policy)


def test_redirect_to_another_web_address_is_followed() -> None:
    data = rss([Item("a", "Moved", WHEN)])
    with feed_server() as server:
        server.serve("/new.xml", data)
        feed = load_feed(server.redirect("/old.xml", server.url("/new.xml")), policy=server.policy)
        assert server.requests == ["/old.xml", "/new.xml"]
    assert feed.entries[0].title == "Moved"


def test_json_feed_round_trip_of_the_sample() -> None:
    # The same articles as the sample RSS feed, written as JSON Feed, read the same way.
    rss_entries = load_feed(str(EXAMPLE)).entries
    items = [
        {
            "id": entry.guid,
            "url": entry.url,
            "title": entry.title,
            "content_html": entry.body_html,
            "summary": entry.summary,
            "date_published": entry.published_at.isoformat() if entry.published_at else None,
        }
        for entry in rss_entries
    ]
    json_entries = parse_feed(
        json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    ).entries
    assert [(e.guid, e.title, e.summary, e.published_at) for e in json_entries] == [
        (e.guid, e.title, e.summary, e.published_at) for e in rss_entries
    ]


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("http://127.0.0.1:{port}/feed.xml", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/feed.xml", "localhost is at "),
        ("http://2130706433:{port}/feed.xml", "is at 127.0.0.1, a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/feed.xml", "a loopback address"),
        ("http://0.0.0.0:{port}/feed.xml", "0.0.0.0 is an unspecified address"),
        ("http://10.20.30.40/feed.xml", "10.20.30.40 is a private address"),
        ("http://192.168.1.1/feed.xml", "192.168.1.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/feed.xml", "fe80::1 is a link-local address"),
        ("http://100.64.0.1/feed.xml", "100.64.0.1 is a reserved address"),
    ],
)
def test_sources_on_this_machine_or_a_private_network_are_refused(
    source: str, problem: str
) -> None:
    with feed_server() as server:
        server.serve("/feed.xml", rss([Item("a", "A", WHEN)]))
        with pytest.raises(ForbiddenFeedAddress) as refused:
            load_feed(source.format(port=server.port), timeout=5)
        assert server.requests == []
    assert problem in str(refused.value)
    assert str(refused.value).endswith("feeds are downloaded from public addresses only")


def scripted(answers: dict[str, list[list[str]]]) -> Callable[[str, int], list[str]]:
    """A resolver that answers for some names from a script, each lookup taking the next
    answer; other names go to the system's resolver."""
    lookups = {name: iter(script) for name, script in answers.items()}

    def resolve(host: str, port: int) -> list[str]:
        if host in lookups:
            return next(lookups[host])
        return [str(info[4][0]) for info in socket.getaddrinfo(host, port)]

    return resolve


def test_redirects_to_this_machine_or_a_private_network_are_refused() -> None:
    with feed_server() as public, feed_server("127.0.0.2") as private:
        private.serve("/feed.xml", rss([Item("secret", "Secret", WHEN)]))
        hidden = f"http://intranet.example:{private.port}/feed.xml"
        # A public name has no private address: one among others is enough to refuse.
        mixed = f"http://mixed.example:{private.port}/feed.xml"
        for target, problem in [
            (private.url("/feed.xml"), "127.0.0.2 is a loopback address"),
            (f"http://[::1]:{private.port}/feed.xml", "::1 is a loopback address"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local"),
            (hidden, "intranet.example is at 127.0.0.2, a loopback address"),
            (mixed, "mixed.example is at 127.0.0.2, a loopback address"),
        ]:
            resolve = scripted(
                {
                    "intranet.example": [["127.0.0.2"]],
                    "mixed.example": [["93.184.215.14", "127.0.0.2"]],
                }
            )
            policy = AddressPolicy(allowed=public.policy.allowed, resolve=resolve)
            with pytest.raises(ForbiddenFeedAddress, match=problem) as refused:
                load_feed(public.redirect("/moved.xml", target), timeout=5, policy=policy)
            assert f"the server redirected to {target!r}" in str(refused.value)
        assert private.requests == []
        # Allowed, the private network is reached through the same redirect.
        allowed = AddressPolicy(allowed=(ip_network("127.0.0.0/8"),))
        moved = public.redirect("/moved.xml", private.url("/feed.xml"))
        [entry] = load_feed(moved, policy=allowed).entries
        assert entry.title == "Secret"
