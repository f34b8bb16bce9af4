"""CPU time of each step of a signup, in one process, without gunicorn.

    .venv/bin/python bench/signup_steps.py [--signups 300] [--database-url URL]

Each signup is what a browser and the web process do: GET /subscribe, POST the form with its
token and cookie (through ``app.test_client()``), then the confirmation email, sent by the
outbox over one kept SMTP connection to the benchmark sink (``bench/smtp_sink.py``) as the
web process's mail thread sends a batch of one. It prints the mean CPU time of each step
(this process only: the sink runs in its own). ``--profile FILE`` writes a cProfile of the
measured signups. Without ``--database-url`` a fresh SQLite file is used; a PostgreSQL URL
must name an empty database.
"""

from __future__ import annotations

import argparse
import cProfile
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.smtp_sink import Sink  # noqa: E402  (after the path set-up above)

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
WARM_UP = 30


def main() -> None:
    from newsletter import create_app
    from newsletter.app_db import get_engine
    from newsletter.migrate import upgrade
    from newsletter.runtime import get_runtime
    from newsletter.web.dispatch import get_dispatcher

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signups", type=int, default=300, help="signups measured")
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    parser.add_argument("--profile", help="write a cProfile of the measured signups here")
    options = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="signup-steps-")
    sink = Sink()
    try:
        settings = {
            "INSTANCE_PATH": folder,
            "SECRET_KEY": "bench-secret-key-0123456789abcdef0123456789",
            "BASE_URL": "https://news.example.org",
            "POSTAL_ADDRESS": "1 Example Street, Example City",
            "MAIL_URL": f"smtp://127.0.0.1:{sink.port}",
            "SIGNUP_RATE_LIMIT": "100000000 per minute",
            "SIGNUP_MIN_SECONDS": 0,
            "LOG_LEVEL": "WARNING",
        }
        if options.database_url:
            settings["DATABASE_URL"] = options.database_url
        app = create_app(settings)
        upgrade(get_engine(app))
        # The emails are sent here, step by step, instead of by the web process's mail threads.
        queued: list[int] = []
        get_dispatcher(app).submit = queued.extend  # type: ignore[method-assign, assignment]
        outbox = get_runtime(app).outbox()
        connection = outbox.transport.connect()

        def signups(count: int, prefix: str) -> dict[str, float]:
            spent = {"GET /subscribe": 0.0, "POST /subscribe": 0.0, "confirmation email": 0.0}
            for number in range(count):
                client = app.test_client()
                started = time.process_time()
                page = client.get("/subscribe").get_data(as_text=True)
                got = time.process_time()
                match = CSRF.search(page)
                assert match, "no CSRF token on the form page"
                data = {
                    "csrf_token": match.group(1),
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "email": f"{prefix}{number}@example.org",
                    "consent": "y",
                }
                answer = client.post("/subscribe", data=data)
                posted = time.process_time()
                assert answer.status_code == 303, answer.status_code
                outbox.send_many(list(queued), connection)
                queued.clear()
                mailed = time.process_time()
                spent["GET /subscribe"] += got - started
                spent["POST /subscribe"] += posted - got
                spent["confirmation email"] += mailed - posted
            return spent

        signups(WARM_UP, "warm")
        profile = cProfile.Profile() if options.profile else None
        if profile is not None:
            profile.enable()
        spent = signups(options.signups, "measured")
        if profile is not None:
            profile.disable()
            profile.dump_stats(options.profile)
        connection.close()
        get_engine(app).dispose()
    finally:
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)
    database = "PostgreSQL" if options.database_url else "SQLite"
    print(f"{database}, {options.signups} signups, mean CPU per step:")
    for step, seconds in spent.items():
        print(f"  {step:<20} {seconds * 1000 / options.signups:6.2f} ms")
    print(f"  {'whole signup':<20} {sum(spent.values()) * 1000 / options.signups:6.2f} ms")


if __name__ == "__main__":
    main()
