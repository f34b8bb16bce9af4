"""``/livez`` answers whenever the process does; ``/healthz`` also needs the database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from tests.support.smtp import free_port


def test_livez_answers_ok_as_plain_text(client: FlaskClient) -> None:
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok"
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_livez_only_answers_get(client: FlaskClient) -> None:
    assert client.post("/livez").status_code == 405
    assert client.head("/livez").status_code == 200


def test_livez_does_not_touch_the_database(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        down = f"sqlite:///{tmp_path / 'missing-folder' / 'newsletter.db'}"
    else:
        down = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none?connect_timeout=3"
    client = make_app(DATABASE_URL=down, TESTING=False).test_client()
    assert client.get("/healthz").status_code == 503
    live = client.get("/livez")
    assert live.status_code == 200
    assert live.get_data(as_text=True) == "ok"
