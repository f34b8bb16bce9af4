"""Helpers for ``digest auto`` tests: a feed file the site keeps publishing to, runs at given
moments, and what each reader received, article by article."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask

from tests.support.feeds import Item, rss
from tests.support.mailbox import body_text
from tests.support.smtp import MailServer

__all__ = ["SiteFeed", "at", "auto", "received_articles", "site_feed"]

ARTICLE_LINK = re.compile(r"https://example\.org/news/([\w-]+)")


def at(text: str) -> datetime:
    """A moment in UTC from ``2027-03-01 09:05``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class SiteFeed:
    """The site's RSS feed as a file: publish or edit an article, and the file follows."""

    path: Path
    items: dict[str, Item] = field(default_factory=dict)

    def publish(self, guid: str, when: datetime, *categories: str, title: str = "") -> None:
        self.items[guid] = Item(
            guid=guid,
            title=title or f"Story {guid}",
            published=when,
            description=f"About {guid}.",
            categories=list(categories),
        )
        self.write()

    def edit(self, guid: str, title: str) -> None:
        self.items[guid].title = title
        self.write()

    def write(self) -> None:
        self.path.write_bytes(rss(list(self.items.values())))


@pytest.fixture
def site_feed(tmp_path: Path) -> SiteFeed:
    """The site's feed, empty to begin with (a test module names it ``feed``)."""
    site = SiteFeed(tmp_path / "feed.xml")
    site.write()
    return site


def auto(app: Flask, when: datetime | str, *options: str) -> Result:
    """``newsletter digest auto --at WHEN`` in this process."""
    moment = at(when) if isinstance(when, str) else when
    return app.test_cli_runner().invoke(
        args=["digest", "auto", "--at", moment.isoformat(), *options]
    )


def received_articles(server: MailServer) -> dict[str, Counter[str]]:
    """Per recipient, how many times each article (by guid) reached them."""
    found: dict[str, Counter[str]] = defaultdict(Counter)
    for received in server.received:
        text = body_text(received.message)
        for recipient in received.recipients:
            found[recipient].update(set(ARTICLE_LINK.findall(text)))
    return found
