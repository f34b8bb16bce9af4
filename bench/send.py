"""Benchmark: `newsletter digest send` against plain smtplib and the protocol's limit, side by
side in one run.

    .venv/bin/python bench/send.py                      # 10,000 subscribers, SQLite
    .venv/bin/python bench/send.py --rtt-ms 20          # over a network with 20 ms round trips
    .venv/bin/python bench/send.py --database-url postgresql+psycopg://…/empty_db
    .venv/bin/python bench/send.py --subscribers 1000000 --only chunking --stop-after 60
    .venv/bin/python bench/send.py --topics 8           # per-person digests beside the whole
    .venv/bin/python bench/send.py --only chunking,signed --rounds 3   # DKIM's cost

It creates a fresh instance with N active subscribers and one digest of 5 articles (from
examples/feed.xml) for each way of sending, and times the real `newsletter digest send`
command against an SMTP sink in its own process on 127.0.0.1 (bench/smtp_sink.py), the sink
offering:

- chunking:   PIPELINING and CHUNKING (one round trip a message);
- pipelining: PIPELINING alone (two round trips: the message waits for the 354);
- lockstep:   neither (four round trips: how every message went before pipelining);
- signed:     as chunking, every message DKIM-signed with a fresh RSA-2048 key
              (``--dkim-ed25519``: and an Ed25519 key beside it).

Then, each against a fresh sink, the same number of pre-built messages of the same size go
from as many threads over as many reused connections, with no database:

- smtplib:    plain smtplib (which does not pipeline);
- transport:  our SMTP client alone, the sink offering PIPELINING and CHUNKING.

It prints each rate, the sender's and the sink's CPU per message, the send's peak RSS, and
the ratios (signed against chunking: what DKIM costs); with --rtt-ms also the protocol's
limits: connections / RTT with CHUNKING, connections / (2 RTT) with PIPELINING alone.

With --topics N it measures digests made for each person instead: N topics, and ten more
articles spread over their categories beside the feed's five (which match no topic: general
news). The digest of all fifteen goes first to everyone holding no topic (everyone gets
everything); then each subscriber is given a random subset of the N topics and a copy of the
digest goes out again, each person getting their own version. Both with CHUNKING; it prints
both rates, both peak RSS and the ratios (targets: at least 0.8 times the rate, peak memory
within 10%).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402  (after the path set-up above)
from sqlalchemy.orm import Session  # noqa: E402

from bench.smtp_sink import Sink  # noqa: E402  (after the path set-up above)
from newsletter import create_app  # noqa: E402
from newsletter.app_db import session_factory  # noqa: E402
from newsletter.db import utcnow  # noqa: E402
from newsletter.feeds import FeedEntry  # noqa: E402
from newsletter.mail.digest import prepare_digest  # noqa: E402
from newsletter.models import (  # noqa: E402
    Article,
    Digest,
    DigestArticle,
    Subscriber,
    SubscriberTopic,
    Topic,
)
from newsletter.people import Person  # noqa: E402
from newsletter.runtime import get_runtime  # noqa: E402
from newsletter.services.articles import import_entries  # noqa: E402
from newsletter.services.topics import add_topic  # noqa: E402

NEWSLETTER = [sys.executable, "-m", "newsletter"]
CHUNK = 50_000
TICKS = os.sysconf("SC_CLK_TCK")
#: What the sink offers for each way of sending ours.
OFFERS = {
    "chunking": {"pipelining": True, "chunking": True},
    "pipelining": {"pipelining": True, "chunking": False},
    "lockstep": {"pipelining": False, "chunking": False},
    "signed": {"pipelining": True, "chunking": True},
}
#: Pre-built messages from threads, no database: our SMTP client alone, and smtplib.
BASELINES = ("transport", "smtplib")
WAYS = (*OFFERS, *BASELINES)


@dataclass
class Measured:
    way: str
    messages: int
    seconds: float
    #: The sender's CPU while sending (ours: after queueing; smtplib: the whole loop).
    sender_cpu: float
    sink_cpu: float
    peak_kib: int = 0
    whole_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self) -> str:
        per = 1000 / max(self.messages, 1)
        memory = f", peak RSS {self.peak_kib / 1024:.0f} MiB" if self.peak_kib else ""
        return (
            f"{self.way:<11} {self.messages:>8} messages in {self.seconds:7.1f} s = "
            f"{self.rate:7.0f} msg/s; CPU per message: sender {self.sender_cpu * per:.3f} ms, "
            f"sink {self.sink_cpu * per:.3f} ms{memory}"
        )


def process_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def signing_settings(instance: Path, ed25519_too: bool) -> dict[str, str]:
    """Fresh DKIM keys in ``instance`` and the settings that sign with them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from newsletter.mail.dkim_keys import new_rsa_key

    (instance / "dkim.pem").write_bytes(new_rsa_key())
    settings = {
        "NEWSLETTER_DKIM_KEY_FILE": str(instance / "dkim.pem"),
        "NEWSLETTER_DKIM_SELECTOR": "bench",
    }
    if ed25519_too:
        key = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (instance / "dkim-ed25519.pem").write_bytes(key)
        settings["NEWSLETTER_DKIM_ED25519_KEY_FILE"] = str(instance / "dkim-ed25519.pem")
        settings["NEWSLETTER_DKIM_ED25519_SELECTOR"] = "bench-ed25519"
    return settings


def send(
    way: str, digest_id: int, env: dict[str, str], workers: int, args: argparse.Namespace
) -> Measured:
    """Run `newsletter digest send` against a fresh sink offering what ``way`` needs."""
    sink = Sink(args.rtt_ms, **OFFERS[way], aiosmtpd=args.aiosmtpd)
    stop_after = args.stop_after
    env = {**env, "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{sink.port}"}
    if way == "signed":
        env.update(args.signing)
    command = [*NEWSLETTER, "digest", "send", str(digest_id), "--workers", str(workers)]
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if stop_after:
        timer = threading.Timer(stop_after, process.send_signal, (signal.SIGINT,))
        timer.start()
    assert process.stdout is not None
    output: list[str] = []
    queued_cpu = 0.0
    for line in process.stdout:
        output.append(line)
        if line.startswith("Queued digest"):
            # The sending phase starts here: start-up, rendering and queueing are behind.
            queued_cpu = process_cpu(process.pid)
    _, status, usage = os.wait4(process.pid, 0)
    whole = time.monotonic() - started
    if stop_after:
        timer.cancel()
    text = "".join(output)
    if os.waitstatus_to_exitcode(status) not in ((0, 130) if stop_after else (0,)):
        raise SystemExit(f"{' '.join(command)} failed:\n{text}")
    received = sink.stop()
    # The send's own rate (one decimal of msg/s) times the messages: its seconds, printed
    # with one decimal only, would move a 5 s run's rate in steps of 2 %.
    summary = re.search(r"sent (\d+),[^\n]* in [\d.]+ s \(([\d.]+) msg/s\)", text)
    rate = float(summary.group(2)) if summary else 0.0
    seconds = int(summary.group(1)) / rate if summary and rate else whole
    cpu = usage.ru_utime + usage.ru_stime - queued_cpu
    return Measured(way, received, seconds, cpu, sink.cpu, usage.ru_maxrss, whole)


def baseline(
    way: str, data: bytes, count: int, connections: int, args: argparse.Namespace
) -> Measured:
    """Send ``count`` copies of ``data`` from ``connections`` threads, each over its own
    reused connection: with smtplib (lock-step), or with our transport alone, no database."""
    import smtplib

    from newsletter.mail.transports import transport_from_url

    offers = OFFERS["chunking"] if way == "transport" else OFFERS["lockstep"]
    sink = Sink(args.rtt_ms, **offers, aiosmtpd=args.aiosmtpd)

    def with_smtplib(numbers: range) -> None:
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for n in numbers:
                smtp.sendmail("news@example.org", [f"reader{n}@example.org"], data)

    def with_transport(numbers: range) -> None:
        connection = transport_from_url(f"smtp://127.0.0.1:{sink.port}").connect()
        for n in numbers:
            connection.send(data, "news@example.org", [f"reader{n}@example.org"])
        connection.close()

    worker = with_transport if way == "transport" else with_smtplib
    shares = [range(i, count, connections) for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    started, cpu = time.monotonic(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    received = sink.stop()
    return Measured(way, received, seconds, cpu, sink.cpu)


def set_up(env: dict[str, str], subscribers: int, digests: int, topics: int = 0) -> list[int]:
    """The schema, the subscribers and ``digests`` digests of the same articles, filled in by
    child processes.

    Filling a million rows makes a process large, and a process started later by a large one
    reports that size as its own peak: so this bench process stays small."""
    run([*NEWSLETTER, "db", "upgrade"], env)
    run([*NEWSLETTER, "articles", "import", str(ROOT / "examples" / "feed.xml")], env)
    output = run([*NEWSLETTER, "digest", "create", "--max", "5"], env)
    first = int(re.search(r"\d+", output).group(0))  # type: ignore[union-attr]
    fill_command = [sys.executable, __file__, "--fill", str(subscribers), str(first), str(digests)]
    output = run([*fill_command, "--topics", str(topics)], env)
    return [int(number) for number in output.split()]


def topic_articles(session: Session, digest: Digest, topics: int) -> None:
    """``topics`` topics, and ten articles spread over their categories added to ``digest``."""
    for k in range(topics):
        add_topic(session, f"topic-{k}", f"Topic {k}", [f"Topic {k}"])
    newest = max(entry.article.published_at for entry in digest.entries)
    entries = [
        FeedEntry(
            guid=f"bench-topic-article-{n}",
            url=f"https://example.org/topics/{n}",
            title=f"News under topic {n % topics}: article {n}",
            summary=f"What happened, told in a sentence or two: article {n}.",
            body_html=f"<p>Article {n}.</p>",
            image_url=None,
            image_alt=None,
            published_at=newest - timedelta(minutes=n + 1),
            categories=(f"Topic {n % topics}",),
        )
        for n in range(10)
    ]
    import_entries(session, entries)
    session.flush()
    position = len(digest.entries)
    for entry in entries:
        article = session.scalars(select(Article).where(Article.guid == entry.guid)).one()
        digest.entries.append(DigestArticle(article=article, position=position))
        position += 1
    session.flush()


def choose_topics(topics: int) -> None:
    """Each subscriber holds a random subset of the topics (each topic with even odds)."""
    app = create_app()
    chance = random.Random(8)
    with session_factory(app).begin() as session:
        ids = [topic_id for (topic_id,) in session.execute(select(Topic.id).order_by(Topic.id))][
            :topics
        ]
        people = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
        for start in range(0, len(people), CHUNK):
            session.execute(
                insert(SubscriberTopic),
                [
                    {"subscriber_id": person, "topic_id": topic_id}
                    for person in people[start : start + CHUNK]
                    for topic_id in ids
                    if chance.random() < 0.5
                ],
            )


def instance_env(instance: Path, **settings: str) -> dict[str, str]:
    """This process's environment with no setting of ours but a benchmark instance's in
    ``instance``, and ``settings`` (``NEWSLETTER_`` names) on top."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_INSTANCE_PATH=str(instance),
        NEWSLETTER_BASE_URL="https://news.example.org",
        NEWSLETTER_POSTAL_ADDRESS="1 Example Street, Example City",
        NEWSLETTER_SECRET_KEY="benchmark-secret-key",
        **settings,
    )
    return env


def reader_row(n: int, now: datetime) -> dict[str, object]:
    """Reader ``n``, active, as a bulk insert of subscribers takes it."""
    return {
        "email": f"reader{n}@example.org",
        "email_key": f"reader{n}@example.org",
        "first_name": f"Reader{n}",
        "last_name": "Example",
        "status": "active",
        "token_nonce": f"{n:016x}",
        "created_at": now,
        "updated_at": now,
    }


def fill(subscribers: int, first: int, digests: int, topics: int = 0) -> None:
    """Subscribers, and copies of digest ``first`` (another send of the same digest would
    find everyone sent); with ``topics``, those topics and articles under them too."""
    app = create_app()
    now = utcnow()
    with session_factory(app).begin() as session:
        for start in range(0, subscribers, CHUNK):
            session.execute(
                insert(Subscriber),
                [reader_row(n, now) for n in range(start, min(start + CHUNK, subscribers))],
            )
        original = session.get_one(Digest, first)
        if topics:
            topic_articles(session, original, topics)
        entries = session.scalars(
            select(DigestArticle).where(DigestArticle.digest_id == first)
        ).all()
        copies = [original]
        for _ in range(digests - 1):
            copy = Digest(subject=original.subject)
            session.add(copy)
            for entry in entries:
                copy.entries.append(
                    DigestArticle(article_id=entry.article_id, position=entry.position)
                )
            copies.append(copy)
        session.flush()
        print(" ".join(str(digest.id) for digest in copies))


def one_message(digest_id: int) -> bytes:
    app = create_app()
    runtime = get_runtime(app)
    with runtime.sessions() as session:
        prepared = prepare_digest(
            session, runtime.site, runtime.renderer, session.get_one(Digest, digest_id)
        )
    recipient = Person(1, "0" * 16, "reader1@example.org", "Reader1", "Example")
    return prepared.outgoing_for(recipient, "<bench.1@example.org>").data


def report(results: list[Measured], workers: int, rtt_ms: float) -> None:
    by_way = {result.way: result for result in results}
    ratios: list[tuple[str, float, float, str]] = []
    if "chunking" in by_way and "smtplib" in by_way:
        ratios.append(
            ("ours (chunking) / plain smtplib", by_way["chunking"].rate, by_way["smtplib"].rate,
             ">= 0.8" if not rtt_ms else "")
        )  # fmt: skip
    if "chunking" not in by_way and "lockstep" in by_way and "smtplib" in by_way:
        ratios.append(
            ("ours lock-step / plain smtplib", by_way["lockstep"].rate, by_way["smtplib"].rate, "")
        )
    if "chunking" in by_way and "lockstep" in by_way:
        ratios.append(
            ("ours (chunking) / ours lock-step (before pipelining)", by_way["chunking"].rate,
             by_way["lockstep"].rate, ">= 3" if rtt_ms else "")
        )  # fmt: skip
    if "signed" in by_way and "chunking" in by_way:
        ratios.append(
            ("DKIM-signed / unsigned (chunking)", by_way["signed"].rate, by_way["chunking"].rate,
             ">= 0.7")
        )  # fmt: skip
    if "transport" in by_way and "smtplib" in by_way:
        ratios.append(
            ("our SMTP client alone / plain smtplib", by_way["transport"].rate,
             by_way["smtplib"].rate, "")
        )  # fmt: skip
    if rtt_ms:
        limit = workers / (rtt_ms / 1000)
        print(f"protocol limit with CHUNKING: {workers} / {rtt_ms:g} ms = {limit:.0f} msg/s")
        print(f"  with PIPELINING alone: {workers} / (2 x {rtt_ms:g} ms) = {limit / 2:.0f} msg/s")
        print(f"  lock-step (4 round trips): {limit / 4:.0f} msg/s")
        if "chunking" in by_way:
            ratios.append(("ours (chunking) / its limit", by_way["chunking"].rate, limit, ">= 0.8"))
        if "transport" in by_way:
            alone = by_way["transport"].rate
            ratios.append(("our SMTP client alone / its limit", alone, limit, ""))
        if "pipelining" in by_way:
            ratios.append(
                ("ours (pipelining) / its limit", by_way["pipelining"].rate, limit / 2, ">= 0.8")
            )
    for label, ours, theirs, target in ratios:
        verdict = ""
        if target:
            met = ours / theirs >= float(target.split()[-1])
            verdict = f"  (target {target}: {'met' if met else 'MISSED'})"
        print(f"ratio {label}: {ours / theirs:.2f}{verdict}")


def compare_topics(env: dict[str, str], args: argparse.Namespace) -> None:
    """The whole digest to everyone, then a copy with each person's own version."""
    first, second = set_up(env, args.subscribers, 2, args.topics)
    data = one_message(first)
    print(
        f"{args.subscribers} subscribers, {args.database_url or 'sqlite'}, {args.workers} "
        f"connections, {args.topics} topics, 15 articles (5 general news), {len(data)} bytes "
        f"the whole message, round trip {args.rtt_ms:g} ms"
    )
    whole = replace(send("chunking", first, env, args.workers, args), way="everyone")
    print(whole.line(), flush=True)
    run([sys.executable, __file__, "--choose-topics", str(args.topics)], env)
    own = replace(send("chunking", second, env, args.workers, args), way="own topics")
    print(own.line(), flush=True)
    rate = own.rate / whole.rate
    memory = own.peak_kib / whole.peak_kib
    print(
        f"ratio rate own topics / everyone: {rate:.2f}  "
        f"(target >= 0.8: {'met' if rate >= 0.8 else 'MISSED'})"
    )
    print(
        f"ratio peak RSS own topics / everyone: {memory:.2f}  "
        f"(target <= 1.10: {'met' if memory <= 1.10 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="the sink's round-trip time")
    parser.add_argument("--database-url", help="an empty database (default: SQLite)")
    parser.add_argument(
        "--only", default=",".join(WAYS), help=f"comma-separated ways, of {', '.join(WAYS)}"
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure every way this often")
    parser.add_argument(
        "--stop-after",
        type=float,
        default=0.0,
        help="send Ctrl-C to each send after this many seconds (peak memory of a partial run)",
    )
    parser.add_argument(
        "--aiosmtpd",
        action="store_true",
        help="the aiosmtpd sink instead (offers neither extension: lockstep and smtplib only)",
    )
    parser.add_argument(
        "--topics",
        type=int,
        default=0,
        help="per-person digests: give the subscribers random subsets of this many topics and "
        "compare with everyone getting everything",
    )
    parser.add_argument(
        "--dkim-ed25519",
        action="store_true",
        help="the signed way signs with an Ed25519 key as well as the RSA-2048 one",
    )
    parser.add_argument("--fill", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--choose-topics", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill is not None:
        subscribers, first, digests = args.fill
        fill(subscribers, first, digests, topics=args.topics)
        return
    if args.choose_topics is not None:
        choose_topics(args.choose_topics)
        return
    ways = [way for way in args.only.split(",") if way]
    if unknown := set(ways) - set(WAYS):
        parser.error(f"unknown ways: {', '.join(sorted(unknown))}")
    if args.aiosmtpd and set(ways) - {"lockstep", "smtplib"}:
        parser.error(
            "the aiosmtpd sink offers neither PIPELINING nor CHUNKING: --only lockstep,smtplib"
        )
    ours = [way for way in ways if way in OFFERS] * args.rounds

    instance = Path(tempfile.mkdtemp(prefix="newsletter-bench-"))
    env = instance_env(instance)
    if args.database_url:
        env["NEWSLETTER_DATABASE_URL"] = args.database_url
    os.environ.update(env)
    args.signing = signing_settings(instance, args.dkim_ed25519) if "signed" in ways else {}
    try:
        if args.topics:
            compare_topics(env, args)
            return
        digests = set_up(env, args.subscribers, max(len(ours), 1))
        data = one_message(digests[0])
        load = os.getloadavg()
        print(
            f"{args.subscribers} subscribers, {args.database_url or 'sqlite'}, "
            f"{args.workers} connections, {len(data)} bytes a message, round trip "
            f"{args.rtt_ms:g} ms{', aiosmtpd sink' if args.aiosmtpd else ''}; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        results: list[Measured] = []
        for round_ in range(args.rounds):
            for index, way in enumerate(w for w in ways if w in OFFERS):
                digest_id = digests[round_ * len(ours) // args.rounds + index]
                result = send(way, digest_id, env, args.workers, args)
                results.append(result)
                print(result.line(), flush=True)
            for way in (w for w in ways if w in BASELINES):
                count = results[-1].messages if results else args.subscribers
                results.append(baseline(way, data, count, args.workers, args))
                print(results[-1].line(), flush=True)
            report(results[-len(ways) :], args.workers, args.rtt_ms)
        load = os.getloadavg()
        print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    finally:
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
