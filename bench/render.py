"""How much a digest costs per message once its article part is rendered.

Renders a digest of ten articles the way a send does (templates and CSS inlining once, in
``prepare_digest``), builds N personalised messages from it, and compares that with rendering
everything again for every message. Runs on a throw-away SQLite database; prints figures.

    .venv/bin/python bench/render.py [--messages 10000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from newsletter import create_app
from newsletter.app_db import get_engine, session_factory
from newsletter.feeds import load_feed
from newsletter.mail.digest import prepare_digest
from newsletter.mail.wire import stable_message_id
from newsletter.migrate import upgrade
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.articles import import_entries
from newsletter.services.digests import create_digest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feed.xml"


def timed(work: Callable[[], object], repeat: int) -> float:
    """The median CPU time of ``work`` in seconds (steadier than wall time on a busy machine)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times)


def total(work: Callable[[Person], object], people: list[Person]) -> float:
    """CPU seconds for ``work`` on every person; results are dropped, as a sender does."""
    started = time.process_time()
    for person in people:
        work(person)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages to build")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(
            {
                "INSTANCE_PATH": folder,
                "SECRET_KEY": "benchmark-secret-key-of-reasonable-length",
                "BASE_URL": "https://news.example.org",
                "ORGANISATION": "Harbourside Rights Trust",
                "POSTAL_ADDRESS": "1 Quay Street, Harbourside",
                "SENDER": "Harbourside Rights Trust <news@example.org>",
            }
        )
        upgrade(get_engine(app))
        runtime = get_runtime(app)
        site = runtime.site
        with session_factory(app)() as session:
            feed = load_feed(str(EXAMPLE))
            # Ten articles: the sample's six and four more with new ids.
            entries = list(feed.entries) + [
                entry.__class__(**{**entry.__dict__, "guid": f"{entry.guid}-again"})
                for entry in feed.entries[:4]
            ]
            import_entries(session, entries)
            digest = create_digest(session, site)
            session.commit()

            recipients = [
                Person(
                    id=number,
                    token_nonce=f"{number:016x}",
                    email=f"reader{number}@example.org",
                    first_name=f"Reader{number}",
                    last_name="Example",
                )
                for number in range(1, args.messages + 1)
            ]

            one_render = timed(
                lambda: prepare_digest(session, site, runtime.renderer, digest), repeat=50
            )
            prepared = prepare_digest(session, site, runtime.renderer, digest)

            def from_scratch() -> None:
                # What a send would cost if it rendered and inlined for every person.
                again = prepare_digest(session, site, runtime.renderer, digest)
                again.outgoing_for(recipients[0], message_id(recipients[0]))

            def message_id(person: Person) -> str:
                return stable_message_id(site, "digest", person.id)

            one_from_scratch = timed(from_scratch, repeat=50)
            personalise = total(
                lambda person: (prepared.text_for(person), prepared.html_for(person)), recipients
            )
            # The one builder writes wire bytes directly: building is serialising.
            build_and_bytes = total(
                lambda person: prepared.outgoing_for(person, message_id(person)), recipients
            )
            size = len(prepared.outgoing_for(recipients[0], message_id(recipients[0])).data)
        get_engine(app).dispose()

    count = args.messages
    print(f"python {platform.python_version()} on {platform.machine()}, {sys.platform}; CPU time")
    print(f"digest of {len(entries)} articles, {size / 1024:.1f} KiB per message")
    print(f"one full render (templates + CSS inlining):    {one_render * 1000:8.2f} ms")
    print(f"one message from scratch (render + build):     {one_from_scratch * 1000:8.2f} ms")
    print(
        f"{count:,} messages personalised (text + HTML):  {personalise:8.2f} s "
        f"= {personalise / one_render:,.0f} full renders ({personalise / count * 1e6:.0f} µs each)"
    )
    print(
        f"{count:,} messages built, as wire bytes:       {build_and_bytes:8.2f} s "
        f"= {build_and_bytes / one_render:,.0f} full renders "
        f"({build_and_bytes / count * 1e6:.0f} µs each)"
    )
    print(
        f"rendering from scratch for each would take:   {one_from_scratch * count:8.2f} s "
        f"({one_from_scratch * count / build_and_bytes:.1f}x longer)"
    )


if __name__ == "__main__":
    main()
