"""The signup box's form token: signed, timed to a fraction of a second, its own purpose."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer

from newsletter.form_tokens import SALT, FormTokens, InvalidFormToken
from newsletter.tokens import Purpose, TokenData, Tokens
from tests.support.tokens import flip_first

KEY = "current-key-of-reasonable-length"


def test_age_is_the_time_since_the_form_was_served() -> None:
    tokens = FormTokens(KEY)
    token = tokens.make(now=1000.0)
    assert tokens.age(token, now=1000.25) == pytest.approx(0.25)
    assert tokens.age(token, now=4600.0) == pytest.approx(3600.0)


def test_an_older_key_still_reads_and_an_unknown_one_does_not() -> None:
    token = FormTokens("old-key-of-reasonable-length").make(now=1000.0)
    assert FormTokens(KEY, ["old-key-of-reasonable-length"]).age(token, now=1001.0) == 1.0
    with pytest.raises(InvalidFormToken):
        FormTokens(KEY).age(token)


def test_forged_tampered_or_foreign_tokens_are_refused() -> None:
    tokens = FormTokens(KEY)
    token = tokens.make()
    payload, signature = token.split(".")
    link = Tokens(KEY).make(Purpose.CONFIRM, TokenData(1, "nonce", 2))
    forged = [
        "",
        "not-a-token",
        f"{flip_first(payload)}.{signature}",
        f"{payload}.{flip_first(signature)}",
        link,
        # Signed with the right key and salt, but not holding a time.
        URLSafeSerializer(KEY, salt=SALT).dumps({"served": "yesterday"}),
        URLSafeSerializer(KEY, salt=SALT).dumps({"served": True}),
        URLSafeSerializer(KEY, salt=SALT).dumps([1000.0]),
    ]
    for text in forged:
        with pytest.raises(InvalidFormToken):
            tokens.age(text)
    # And a box token opens no link.
    with pytest.raises(ValueError, match="not valid"):
        Tokens(KEY).read(Purpose.CONFIRM, token)
