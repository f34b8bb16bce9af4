"""Rewriting HTML as balanced markup of bounded depth, before the sanitiser reads it."""

from __future__ import annotations

import pytest

from newsletter.balanced_html import MAX_DEPTH, balanced_html


@pytest.mark.parametrize(
    ("html", "balanced"),
    [
        ("<p>a<p>b", "<p>a</p><p>b</p>"),
        ("<ul><li>a<li>b</ul>", "<ul><li>a</li><li>b</li></ul>"),
        ("<p><b>bold</p>still", "<p><b>bold</b></p><b>still</b>"),
        ("<td><b>x</td>y", "<td><b>x</b></td>y"),
        (
            "<table><tr><td>a<td>b</table>",
            "<table><tbody><tr><td>a</td><td>b</td></tr></tbody></table>",
        ),
        ("<h2>a<h3>b", "<h2>a</h2><h3>b</h3>"),
        ("<a href=1>x<a href=2>y", '<a href="1">x</a><a href="2">y</a>'),
        ("a < b > c & d", "a &lt; b &gt; c & d"),
        ('<a title="x>y" href=\'q"\'>t</a>', '<a title="x>y" href="q&quot;">t</a>'),
        ("<P CLASS=x ONCLICK=y class=z>t", '<p class="x" onclick="y">t</p>'),
        ("<!-- <p> --><!--x--!>t<!-->u<!doctype html><?php x ?></p>", "tu"),
        ("<br/></br><img src=x>", '<br><br><img src="x">'),
        (
            "<script>if (a<b) {}</p></script><p>x",
            "<script>if (a&lt;b) {}&lt;/p&gt;</script><p>x</p>",
        ),
        ("<plaintext><b>x", "&lt;b&gt;x"),
        ('<p>x<a b="never closed>y', "<p>x</p>"),
        ("<x<y>t</x<y>", "t"),
    ],
)
def test_markup_is_balanced(html: str, balanced: str) -> None:
    assert balanced_html(html) == balanced


def test_depth_is_capped_and_the_text_kept() -> None:
    balanced = balanced_html("<div><span>" * 10_000 + "bottom" + "</i>" * 10)
    assert balanced.count("<div>") + balanced.count("<span>") == MAX_DEPTH
    assert balanced.endswith("bottom" + "</span></div>" * (MAX_DEPTH // 2))


def test_relative_addresses_are_resolved_against_the_base() -> None:
    html = '<a href="../b?x=1&amp;y=2">b</a><img src=" pic.png "><a href="https://else.example/">'
    assert balanced_html(html, base_url="https://example.org/news/a") == (
        '<a href="https://example.org/b?x=1&amp;y=2">b</a>'
        '<img src="https://example.org/news/pic.png">'
        '<a href="https://else.example/"></a>'
    )
