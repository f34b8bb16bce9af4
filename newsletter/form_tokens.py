"""The signed, timed token of the signup box in a frame (``/embed``).

A box in a frame on another site cannot count on a cookie: browsers block third-party
cookies. Its form carries this token in the page instead. The token holds the moment the
form was served, to a fraction of a second, signed with the secret key and a purpose of
its own (a link token cannot pass for it, nor it for one). It tells the form's age: too old,
and the form has expired; too young, and no person filled it in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["FormTokens", "InvalidFormToken"]

SALT = "newsletter.signup-box"


class InvalidFormToken(ValueError):
    """Tampered, truncated, signed with an unknown key, or made for another purpose."""


class FormTokens:
    """Makes and reads box tokens with the current key and any older keys still trusted."""

    def __init__(self, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        # itsdangerous signs with the last key and verifies with all of them.
        self._serializer = URLSafeSerializer([*fallbacks, secret_key], salt=SALT)

    def make(self, now: float | None = None) -> str:
        served = time.time() if now is None else now
        return str(self._serializer.dumps({"served": served}))

    def age(self, token: str, now: float | None = None) -> float:
        """Seconds since the form holding ``token`` was served."""
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise InvalidFormToken("this form's token is not valid") from None
        served = payload.get("served") if isinstance(payload, dict) else None
        if not isinstance(served, int | float) or isinstance(served, bool):
            raise InvalidFormToken("this form's token is not valid")
        return (time.time() if now is None else now) - served
