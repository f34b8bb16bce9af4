"""Benchmark: `newsletter digest auto` giving each reader their own articles, against
`newsletter digest send` of one everyone-gets-everything digest, in one run.

    .venv/bin/python bench/auto.py                      # 10,000 readers, SQLite
    .venv/bin/python bench/auto.py --database-url postgresql+psycopg://…/empty_db

It creates a fresh instance with 8 topics and N active readers spread over the three
rhythms (every digest, weekly, monthly) and over the topics (one topic, two, or none: all),
and a feed of 40 articles over a week in those topics and general news. A first `digest
auto` run imports the feed; the timed one, at Monday's slot, composes the digest (every
reader is due: nobody had one yet) and sends each reader the articles of their topics, one
assembly per distinct set. Then, with everyone's topics cleared, `digest send` of a digest of
the same articles: every reader gets all of them. Each against a fresh sink of
bench/smtp_sink.py (PIPELINING and CHUNKING) on 127.0.0.1, with the same connections.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, insert, select  # noqa: E402  (after the path set-up above)

from bench.send import instance_env, reader_row  # noqa: E402
from bench.smtp_sink import Sink  # noqa: E402
from newsletter import create_app  # noqa: E402
from newsletter.app_db import session_factory  # noqa: E402
from newsletter.db import utcnow  # noqa: E402
from newsletter.models import Digest, DigestArticle, Subscriber, SubscriberTopic, Topic  # noqa: E402
from newsletter.services.topics import add_topic  # noqa: E402
from tests.support.feeds import Item, rss  # noqa: E402

NEWSLETTER = [sys.executable, "-m", "newsletter"]
TOPICS = 8
ARTICLES = 40
RHYTHMS = ("each", "weekly", "monthly")
IMPORT_AT = datetime(2027, 3, 1, 7, 0, tzinfo=UTC)  # a Monday, before its 09:00 slot
SLOT_AT = datetime(2027, 3, 1, 9, 5, tzinfo=UTC)
SUMMARY = re.compile(r"sent (\d+), failed \d+, skipped (\d+), .* in ([\d.]+) s \(([\d.]+) msg/s\)")


def run(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout, seconds


def write_feed(path: Path) -> None:
    """40 articles over the week before the slot: each topic's, two topics', general news."""
    items = []
    for number in range(ARTICLES):
        kind = number % 10
        categories = (
            [f"Topic {kind}"]
            if kind < TOPICS
            else (
                [f"Topic {number % TOPICS}", f"Topic {(number + 3) % TOPICS}"] if kind == 8 else []
            )
        )
        items.append(
            Item(
                guid=f"story-{number}",
                title=f"Story {number}: what happened this week",
                published=IMPORT_AT - timedelta(hours=4 * number),
                description="A summary of the story, a sentence or two long, as feeds give it.",
                categories=categories,
            )
        )
    path.write_bytes(rss(items))


def fill(readers: int) -> None:
    """Topics and readers, in this process (the bench's own child)."""
    app = create_app()
    now = utcnow()
    with session_factory(app).begin() as session:
        topics = [
            add_topic(session, f"topic-{n}", f"Topic {n}", [f"Topic {n}"]) for n in range(TOPICS)
        ]
        session.flush()
        session.execute(
            insert(Subscriber),
            [
                {
                    **reader_row(n, now),
                    "rhythm": RHYTHMS[n % 3],
                    "received_through": IMPORT_AT - timedelta(days=30),
                }
                for n in range(readers)
            ],
        )
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
        choices = []
        for n, subscriber_id in enumerate(ids):
            shape = n % 10  # 0-5: one topic, 6-7: two, 8-9: none (everything)
            if shape < 6:
                chosen = [topics[n % TOPICS]]
            elif shape < 8:
                chosen = [topics[n % TOPICS], topics[(n + 1) % TOPICS]]
            else:
                chosen = []
            choices += [{"subscriber_id": subscriber_id, "topic_id": t.id} for t in chosen]
        session.execute(insert(SubscriberTopic), choices)
        print(session.scalar(select(Topic.id).order_by(Topic.id.desc()).limit(1)))


def copy_digest() -> None:
    """A draft digest of the automatic digest's articles, and everyone's topics cleared, so
    that `digest send` gives every reader every article."""
    app = create_app()
    with session_factory(app).begin() as session:
        session.execute(delete(SubscriberTopic))
        automatic = session.scalars(select(Digest).order_by(Digest.id)).first()
        assert automatic is not None, "the automatic run composed no digest"
        copy = Digest(subject=automatic.subject)
        for entry in automatic.entries:
            copy.entries.append(DigestArticle(article_id=entry.article_id, position=entry.position))
        session.add(copy)
        session.flush()
        print(copy.id)


def timed(label: str, command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command`` against a fresh sink; print and return its send time and rate."""
    sink = Sink()
    env = {**env, "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{sink.port}"}
    output, whole = run(command, env)
    received = sink.stop()
    match = SUMMARY.search(output)
    assert match, output
    sent, skipped, seconds, rate = match.groups()
    print(
        f"{label:<34} {received:>6} messages ({skipped} skipped) sent in {float(seconds):6.1f} s "
        f"= {float(rate):6.0f} msg/s; the whole command {whole:5.1f} s"
    )
    assert int(sent) == received, output
    return whole, float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", help="an empty database (default: SQLite)")
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--copy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill is not None:
        fill(args.fill)
        return
    if args.copy:
        copy_digest()
        return
    instance = Path(tempfile.mkdtemp(prefix="newsletter-bench-auto-"))
    feed = instance / "feed.xml"
    env = instance_env(instance, NEWSLETTER_FEEDS=str(feed), NEWSLETTER_SCHEDULE="weekly mon 09:00")
    if args.database_url:
        env["NEWSLETTER_DATABASE_URL"] = args.database_url
    os.environ.update(env)
    run([*NEWSLETTER, "db", "upgrade"], env)
    write_feed(feed)
    run([sys.executable, __file__, "--fill", str(args.readers)], env)
    run([*NEWSLETTER, "digest", "auto", "--at", IMPORT_AT.isoformat()], env)
    workers = ["--workers", str(args.workers)]
    print(
        f"{args.readers} readers over {len(RHYTHMS)} rhythms and {TOPICS} topics, "
        f"{ARTICLES} articles, {args.workers} connections"
    )
    auto_whole, auto_rate = timed(
        "digest auto (each their own)",
        [*NEWSLETTER, "digest", "auto", "--at", SLOT_AT.isoformat(), *workers],
        env,
    )
    output, _ = run([sys.executable, __file__, "--copy"], env)
    digest_id = output.strip()
    send_whole, send_rate = timed(
        "digest send (everyone everything)",
        [*NEWSLETTER, "digest", "send", digest_id, *workers],
        env,
    )
    rates, wholes = auto_rate / send_rate, auto_whole / send_whole
    print(f"ratio auto / send: rate {rates:.2f}, whole command {wholes:.2f}")


if __name__ == "__main__":
    main()
