"""Who is one person: the key of an address, and the suppression hashes made from it."""

from __future__ import annotations

import hashlib

import pytest

from newsletter.addresses import email_key, folded_suppression_hash, key_hashes, suppression_hash


@pytest.mark.parametrize(
    ("typed", "same_as"),
    [
        pytest.param("Ada@Example.ORG", "ada@example.org", id="ascii-letter-case"),
        pytest.param("  ada@example.org ", "ada@example.org", id="surrounding-spaces"),
        pytest.param("a@xn--bcher-kva.de", "a@bücher.de", id="punycode-domain"),
        pytest.param("a@BÜCHER.de", "a@bücher.de", id="unicode-domain-case"),
        pytest.param("a@ＥＸＡＭＰＬＥ.org", "a@example.org", id="fullwidth-domain"),
        pytest.param("zoe\u0308@example.org", "zoë@example.org", id="decomposed-local-part"),
        pytest.param("用户@XN--FSQU00A.XN--4RR70V", "用户@例子.广告", id="cjk"),
    ],
)
def test_one_mailbox_written_differently_has_one_key(typed: str, same_as: str) -> None:
    assert email_key(typed) == email_key(same_as)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param("straße@example.org", "strasse@example.org", id="sharp-s"),
        pytest.param("\ufb01ona@example.org", "fiona@example.org", id="fi-ligature"),
        pytest.param("JÜRGEN@example.org", "jürgen@example.org", id="non-ascii-letter-case"),
        pytest.param("οδυσσεύς@example.org", "οδυσσεύσ@example.org", id="final-sigma"),
        pytest.param("a@straße.de", "a@strasse.de", id="sharp-s-domain"),
    ],
)
def test_different_mailboxes_keep_different_keys(one: str, other: str) -> None:
    assert email_key(one) != email_key(other)


def test_the_key_lowers_ascii_letters_and_the_domain_only() -> None:
    assert email_key("Jürgen.MÜLLER@Bücher.DE") == "jürgen.mÜller@bücher.de"
    assert email_key("\ufb01ona@example.org") == "\ufb01ona@example.org"


LONG_LABEL = "B" * 70


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("No-At-Sign", "no-at-sign"),
        ("A@", "a@"),
        ("@Example.org", "@example.org"),
        ("A@-Bad-.XN--ZZ", "a@-bad-.xn--zz"),
        (f"A@{LONG_LABEL}.org", f"a@{LONG_LABEL.lower()}.org"),
        ("", ""),
    ],
)
def test_anything_typed_gets_a_key_without_an_error(typed: str, key: str) -> None:
    # Staff look people up by whatever they type (`subscribers show`), and bounce reports
    # quote addresses as they please: a key is always made, never an exception.
    assert email_key(typed) == key


def test_suppression_hashes_come_from_the_key() -> None:
    key = email_key("Straße@Example.org")
    assert suppression_hash("Straße@Example.org") == hashlib.sha256(key.encode()).hexdigest()
    # What an address was hashed as before keys kept non-ASCII letters apart: look-alikes
    # that were one person then share it, so nothing suppressed then is mailed now.
    assert folded_suppression_hash("Straße@example.org") == suppression_hash("strasse@example.org")
    assert folded_suppression_hash("\ufb01ona@example.org") == suppression_hash("fiona@example.org")


@pytest.mark.parametrize(
    "typed", ["Straße@Example.org", "\ufb01ona@example.org", "A@xn--bcher-kva.example"]
)
def test_both_hashes_from_a_key_are_those_of_the_address(typed: str) -> None:
    assert key_hashes(email_key(typed)) == (suppression_hash(typed), folded_suppression_hash(typed))
