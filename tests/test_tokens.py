"""Signed link tokens: one purpose each, tamper-evident, expiring, and rotatable."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from newsletter.tokens import (
    CONFIRM_MAX_AGE,
    ExpiredToken,
    InvalidToken,
    Purpose,
    TokenData,
    Tokens,
)
from tests.support.tokens import flip_first

KEY = "current-key-of-reasonable-length"
DATA = TokenData(subscriber_id=42, nonce="a1b2c3d4e5f60718", consent_event_id=7)


def signed_at(age_seconds: int, key: str, purpose: Purpose, payload: object) -> str:
    """A token signed ``age_seconds`` ago, without waiting for it."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_seconds

    serializer = URLSafeTimedSerializer(key, salt=f"newsletter.{purpose}", signer=Signer)
    return str(serializer.dumps(payload))


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize(
    "data", [DATA, TokenData(1, "nonce"), TokenData(2**40, "x" * 32, 2**40)], ids=str
)
def test_round_trip(purpose: Purpose, data: TokenData) -> None:
    tokens = Tokens(KEY)
    token = tokens.make(purpose, data)
    assert token.isascii() and "/" not in token
    assert tokens.read(purpose, token) == data


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize(
    "data",
    [DATA, TokenData(1, "nonce"), TokenData(2**40, "9f86d081884c7d659a2feaa0c55ad015")],
    ids=str,
)
def test_a_token_is_what_itsdangerous_makes(
    purpose: Purpose, data: TokenData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made without itsdangerous's per-token work, byte for byte its format. (A payload zlib
    could shorten, which a random nonce never is, stays uncompressed: test_round_trip reads
    one back.)"""
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.75)
    payload: list[object] = [data.subscriber_id, data.nonce]
    if data.consent_event_id is not None:
        payload.append(data.consent_event_id)
    keys = ["the-old-key-of-reasonable-length", KEY]
    theirs = URLSafeTimedSerializer(keys, salt=f"newsletter.{purpose}").dumps(payload)
    assert Tokens(KEY, fallbacks=keys[:1]).make(purpose, data) == theirs


def test_tokens_differ_per_subscriber_and_purpose() -> None:
    tokens = Tokens(KEY)
    made = {
        tokens.make(Purpose.CONFIRM, DATA),
        tokens.make(Purpose.UNSUBSCRIBE, DATA),
        tokens.make(Purpose.CONFIRM, TokenData(43, DATA.nonce, 7)),
        tokens.make(Purpose.CONFIRM, TokenData(42, "another-nonce", 7)),
    }
    assert len(made) == 4


def _tamperings(token: str) -> list[str]:
    payload, timestamp, signature = token.split(".")
    return [
        f"{flip_first(payload)}.{timestamp}.{signature}",
        f"{payload}.{flip_first(timestamp)}.{signature}",
        f"{payload}.{timestamp}.{flip_first(signature)}",
        f"{payload}.{timestamp}.",
        f"{payload}.{timestamp}",
        payload,
        token[:-3],
        token + "A",
        "",
        "...",
        "not a token at all",
    ]


@pytest.mark.parametrize("index", range(11))
def test_tampered_or_truncated_token_is_invalid(index: int) -> None:
    tokens = Tokens(KEY)
    bad = _tamperings(tokens.make(Purpose.CONFIRM, DATA))[index]
    with pytest.raises(InvalidToken) as raised:
        tokens.read(Purpose.CONFIRM, bad)
    assert not isinstance(raised.value, ExpiredToken)


@pytest.mark.parametrize(
    ("made_for", "read_for"),
    [(made, read) for made in Purpose for read in Purpose if made is not read],
    ids=str,
)
def test_token_for_one_purpose_is_refused_for_another(made_for: Purpose, read_for: Purpose) -> None:
    tokens = Tokens(KEY)
    with pytest.raises(InvalidToken):
        tokens.read(read_for, tokens.make(made_for, DATA))


def test_preferences_token_does_not_expire() -> None:
    # Like the unsubscribe link: a digest read a year later still leads to the person's page.
    payload = [42, DATA.nonce]
    old = signed_at(5 * 365 * 24 * 3600, KEY, Purpose.PREFERENCES, payload)
    assert Tokens(KEY).read(Purpose.PREFERENCES, old) == TokenData(42, DATA.nonce)


def test_genuine_signature_over_unexpected_content_is_invalid() -> None:
    for payload in [[42], ["42", "nonce"], [42, 7], {"id": 42}, [42, "nonce", "7"], "text"]:
        token = signed_at(0, KEY, Purpose.CONFIRM, payload)
        with pytest.raises(InvalidToken):
            Tokens(KEY).read(Purpose.CONFIRM, token)


def test_confirm_token_expires_after_seven_days_carrying_its_data() -> None:
    payload: list[object] = [DATA.subscriber_id, DATA.nonce, DATA.consent_event_id]
    tokens = Tokens(KEY)
    assert (
        tokens.read(Purpose.CONFIRM, signed_at(CONFIRM_MAX_AGE - 60, KEY, Purpose.CONFIRM, payload))
        == DATA
    )

    with pytest.raises(ExpiredToken) as raised:
        tokens.read(Purpose.CONFIRM, signed_at(CONFIRM_MAX_AGE + 60, KEY, Purpose.CONFIRM, payload))
    assert raised.value.data == DATA
    assert isinstance(raised.value, InvalidToken)


def test_expired_and_tampered_is_invalid_not_expired() -> None:
    payload: list[object] = [DATA.subscriber_id, DATA.nonce, DATA.consent_event_id]
    old = signed_at(CONFIRM_MAX_AGE + 60, KEY, Purpose.CONFIRM, payload)
    with pytest.raises(InvalidToken) as raised:
        # The signature's last character may carry only padding bits, so its first is changed.
        body, signature = old.rsplit(".", 1)
        Tokens(KEY).read(Purpose.CONFIRM, f"{body}.{flip_first(signature)}")
    assert not isinstance(raised.value, ExpiredToken)


def test_unsubscribe_token_does_not_expire() -> None:
    payload: list[object] = [DATA.subscriber_id, DATA.nonce]
    old = signed_at(5 * 365 * 24 * 3600, KEY, Purpose.UNSUBSCRIBE, payload)
    assert Tokens(KEY).read(Purpose.UNSUBSCRIBE, old) == TokenData(42, DATA.nonce)


def test_key_rotation() -> None:
    old_tokens = Tokens("the-old-key-of-reasonable-length")
    issued = old_tokens.make(Purpose.CONFIRM, DATA)

    rotated = Tokens(KEY, fallbacks=["the-old-key-of-reasonable-length"])
    assert rotated.read(Purpose.CONFIRM, issued) == DATA
    # New tokens are signed with the new key: the old key alone cannot read them.
    fresh = rotated.make(Purpose.CONFIRM, DATA)
    assert Tokens(KEY).read(Purpose.CONFIRM, fresh) == DATA
    with pytest.raises(InvalidToken):
        old_tokens.read(Purpose.CONFIRM, fresh)

    # Once the old key is dropped, or for a key never trusted, the old token fails.
    for tokens in [Tokens(KEY), Tokens(KEY, fallbacks=["some-unknown-key-of-good-length"])]:
        with pytest.raises(InvalidToken):
            tokens.read(Purpose.CONFIRM, issued)
