"""Categories from feeds: RSS ``<category>``, Atom ``category/@term`` (or ``label``), JSON Feed
``tags``; cleaned, one spelling of each, compared case-insensitively."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsletter.categories import CATEGORY_LENGTH, clean_category, fold_category
from newsletter.feeds import parse_feed
from tests.support.feeds import Item, atom, json_feed, rss

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_rss_categories() -> None:
    items = [
        Item("a", "Tagged", WHEN, categories=["North Korea", "Human rights", "north  KOREA"]),
        Item("b", "Untagged", WHEN),
    ]
    tagged, untagged = parse_feed(rss(items)).entries
    assert tagged.categories == ("North Korea", "Human rights")
    assert untagged.categories == ()


def test_atom_categories_by_term_else_label() -> None:
    document = atom([Item("urn:a", "Tagged", WHEN, categories=["Asylum"])]).replace(
        b'<category term="Asylum"/>',
        b'<category term="Asylum" label="Asylum seekers"/>'
        b'<category label="Housing &amp; land"/>'
        b'<category term="" label="Prisons"/>',
    )
    (entry,) = parse_feed(document).entries
    assert entry.categories == ("Asylum", "Housing & land", "Prisons")


def test_json_feed_tags() -> None:
    items = [
        {"id": "1", "url": "https://example.org/1", "tags": ["Press freedom", " ", 7, "Asylum"]},
        {"id": "2", "url": "https://example.org/2", "tags": "not a list"},
        {"id": "3", "url": "https://example.org/3"},
    ]
    first, second, third = parse_feed(json_feed(items)).entries
    assert first.categories == ("Press freedom", "Asylum")
    assert second.categories == ()
    assert third.categories == ()


def test_categories_are_one_line_and_bounded() -> None:
    (entry,) = parse_feed(
        json_feed([{"id": "1", "url": "https://example.org/1", "tags": ["A\nB\u2028C", "x" * 500]}])
    ).entries
    assert entry.categories == ("A B C", "x" * CATEGORY_LENGTH)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("North Korea", "NORTH KOREA"),
        ("North Korea", " north\u00a0 korea "),
        ("Straße", "STRASSE"),
        ("ＵＮ", "un"),
    ],
)
def test_spellings_of_one_category_fold_alike(one: str, other: str) -> None:
    assert fold_category(clean_category(one)) == fold_category(clean_category(other))


def test_different_categories_stay_apart() -> None:
    assert fold_category("Korea") != fold_category("North Korea")
    assert clean_category(None) == ""
