"""How long a signup answer takes for a new, pending, active and unsubscribed address.

The form must not reveal who is subscribed, by its answer or by its timing. This prints the
median and 90th percentile per kind of address, with no minimum answer time and with the
configured one (``NEWSLETTER_SIGNUP_MIN_SECONDS``, 0.1 s by default).

    .venv/bin/python bench/signup_timing.py [--rounds 200] [--database-url URL]

Without ``--database-url`` it runs on a fresh SQLite file; a PostgreSQL URL must name an
empty database (the schema is created).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from newsletter import create_app
from newsletter.app_db import get_engine, session_factory
from newsletter.config import DEFAULTS
from newsletter.migrate import upgrade
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.web.dispatch import get_dispatcher

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
KINDS = ("new", "pending", "active", "unsubscribed")


def _app(folder: Path, database_url: str | None, floor: float) -> Flask:
    settings = {
        "INSTANCE_PATH": str(folder),
        "SIGNUP_RATE_LIMIT": "1000000 per minute",
        "SIGNUP_MIN_SECONDS": floor,
        # Each address may get a confirmation every round, so the mail work is measured too.
        "CONFIRMATIONS_PER_DAY": 1000000,
        "LOG_LEVEL": "WARNING",
    }
    if database_url:
        settings["DATABASE_URL"] = database_url
    app = create_app(settings)
    upgrade(get_engine(app))
    return app


def _post(client: FlaskClient, token: str, email: str) -> float:
    data = {
        "csrf_token": token,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": email,
        "consent": "y",
    }
    started = time.perf_counter()
    response = client.post("/subscribe", data=data)
    elapsed = time.perf_counter() - started
    assert response.status_code == 303, response.status_code
    return elapsed


def _set_status(app: Flask, prefix: str, status: str) -> None:
    with session_factory(app).begin() as session:
        session.execute(
            update(Subscriber).where(Subscriber.email_key.like(f"{prefix}%")).values(status=status)
        )


def measure(app: Flask, rounds: int, domain: str) -> dict[str, list[float]]:
    client = app.test_client()
    page = client.get("/subscribe").get_data(as_text=True)
    match = CSRF.search(page)
    assert match
    token = match.group(1)
    for number in range(rounds):  # the known addresses exist before timing starts
        for kind in KINDS[1:]:
            _post(client, token, f"{kind}{number}@{domain}")
    _set_status(app, "active", SubscriberStatus.ACTIVE)
    _set_status(app, "unsubscribed", SubscriberStatus.UNSUBSCRIBED)
    get_dispatcher(app).drain()
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for number in range(rounds):
        for kind in KINDS:  # interleaved, so load changes touch every kind alike
            times[kind].append(_post(client, token, f"{kind}{number}@{domain}"))
    get_dispatcher(app).drain()
    return times


def _report(label: str, times: dict[str, list[float]]) -> None:
    print(label)
    for kind, values in times.items():
        ordered = sorted(values)
        p90 = ordered[int(len(ordered) * 0.9) - 1]
        print(
            f"  {kind:<13} median {statistics.median(values) * 1000:7.2f} ms"
            f"   p90 {p90 * 1000:7.2f} ms   n={len(values)}"
        )
    medians = [statistics.median(values) for values in times.values()]
    print(f"  largest difference between medians: {(max(medians) - min(medians)) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="signups per kind of address")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    options = parser.parse_args()
    floor = float(DEFAULTS["SIGNUP_MIN_SECONDS"])
    runs = [("no minimum answer time", 0.0), (f"minimum answer time {floor} s", floor)]
    for index, (label, value) in enumerate(runs):
        with tempfile.TemporaryDirectory() as folder:
            app = _app(Path(folder), options.database_url, value)
            times = measure(app, options.rounds, f"run{index}.example.org")
            _report(label, times)
            get_engine(app).dispose()


if __name__ == "__main__":
    main()
