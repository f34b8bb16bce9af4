"""The session cookie's signer (the cookie carries our form's CSRF token), made once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from itsdangerous import BadSignature

from newsletter.web.sessions import KeptSignerSessions
from tests.conftest import csrf_token

OLD_KEY = "old-key-0123456789abcdef0123456789abcdef"
NEW_KEY = "new-key-0123456789abcdef0123456789abcdef"


def test_the_signer_is_kept_and_follows_the_keys(make_app: Callable[..., Flask]) -> None:
    app = make_app(SECRET_KEY=OLD_KEY)
    sessions = app.session_interface
    assert isinstance(sessions, KeptSignerSessions)
    signer = sessions.get_signing_serializer(app)
    assert signer is not None
    assert sessions.get_signing_serializer(app) is signer
    cookie = signer.dumps({"csrf_token": "abc"})

    app.config["SECRET_KEY"] = NEW_KEY
    rotated = sessions.get_signing_serializer(app)
    assert rotated is not None
    with pytest.raises(BadSignature):
        rotated.loads(cookie)

    app.config["SECRET_KEY_FALLBACKS"] = [OLD_KEY]
    with_old = sessions.get_signing_serializer(app)
    assert with_old is not None
    assert with_old.loads(cookie) == {"csrf_token": "abc"}
    assert with_old.loads(with_old.dumps({"n": 1})) == {"n": 1}


def test_a_form_page_and_its_post_share_the_session(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    visitor = app.test_client()
    data = {
        "csrf_token": csrf_token(visitor.get("/subscribe")),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "consent": "y",
    }
    assert visitor.post("/subscribe", data=data).status_code == 303
    # Another visitor's cookie-less post with the same token is refused.
    assert app.test_client().post("/subscribe", data=data).status_code == 400
