"""Benchmark: signups through a real gunicorn, against a bare endpoint of the same app.

    .venv/bin/python bench/signup_load.py                         # SQLite, 10 s per phase
    .venv/bin/python bench/signup_load.py --database-url postgresql+psycopg://…/empty_db
    .venv/bin/python bench/signup_load.py --seconds 20 --concurrency 16 --threads 4

It serves the app with gunicorn on 127.0.0.1 (2 sync workers unless --workers and --threads say
otherwise), confirmation emails going to an SMTP sink in its own process (bench/smtp_sink.py).
The load generator is this script in a second process (``--client``), an asyncio client on raw
streams. A signup is what a browser does: GET /subscribe, take the CSRF token and session
cookie, POST the form with a distinct address, and expect the 303. Every connection is kept
open as long as the server allows, as a browser does.

Phase 1, closed loop (``--concurrency`` clients, each starting its next request as soon as the
previous one is answered), alternates the bare endpoint (GET /livez, a constant) and signups,
two rounds of each, so both see the same machine. Phase 2 paces signups open-loop at 80% of the
peak signup rate (new visitors arrive on schedule whether or not earlier ones are answered),
and reports answer times.

It prints the CPU time each part spent per operation (gunicorn's is the server's CPU per full
signup: form, POST and confirmation email, against a target of 5 ms) and how many cores each
part, and the whole machine, kept busy during the signup rounds.

Afterwards the database must hold every accepted signup exactly once (one subscriber, one
``given`` consent event, one confirmation email), and nothing else. The rate limit is raised
with NEWSLETTER_SIGNUP_RATE_LIMIT and the minimum answer time switched off with
NEWSLETTER_SIGNUP_MIN_SECONDS=0: the figures are the server's own work.

A PostgreSQL URL must name an empty database (the schema is created); without one a fresh
SQLite file is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.smtp_sink import Sink, free_port  # noqa: E402  (after the path set-up above)

CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')
SIGNUP_TARGET_RATIO = 0.4
P99_TARGET_MS = 50.0
CPU_TARGET_MS = 5.0
PACED_SHARE = 0.8
SECRET_KEY = "bench-secret-key-0123456789abcdef0123456789"

# --------------------------------------------------------------------------------------------
# The load generator (runs in its own process: ``signup_load.py --client SPEC``)
# --------------------------------------------------------------------------------------------


class HTTPError(Exception):
    """The connection failed or the answer could not be read."""


@dataclass
class Answer:
    status: int
    headers: dict[bytes, list[bytes]]
    body: bytes
    keep_alive: bool


class Connection:
    """One HTTP/1.1 connection, reopened when the server closes it (gunicorn's sync workers
    close after every answer; its threaded workers keep connections alive)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            self.close()
            raise HTTPError(f"no answer: {error!r}") from None
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, status, *_ = status_line.split(b" ", 2)
        parsed: dict[bytes, list[bytes]] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            parsed.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(parsed.get(b"content-length", [b"0"])[0])
        try:
            content = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            self.close()
            raise HTTPError(f"short body: {error!r}") from None
        connection = b",".join(parsed.get(b"connection", [])).lower()
        keep = version == b"HTTP/1.1" and b"close" not in connection
        if not keep:
            self.close()
        return Answer(int(status), parsed, content, keep)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Tally:
    """What one client run saw."""

    done: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)
    late: int = 0

    def time(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "failures": dict(self.failures),
            "latencies": self.latencies,
            "accepted": self.accepted,
            "attempted": self.attempted,
            "late": self.late,
        }


def _cookie(answer: Answer) -> str:
    return "; ".join(value.split(b";", 1)[0].decode() for value in answer.headers[b"set-cookie"])


async def one_signup(
    connection: Connection, email: str, tally: Tally, arrived: float | None = None
) -> None:
    """GET the form, then POST it with the token and cookie it carried."""
    started = time.perf_counter()
    try:
        form = await connection.request("GET", "/subscribe")
        form_done = time.perf_counter()
        match = CSRF.search(form.body)
        if form.status != 200 or match is None:
            tally.statuses[form.status] += 1
            raise HTTPError(f"form page answered {form.status}")
        body = urlencode(
            {
                "csrf_token": match.group(1).decode(),
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": email,
                "consent": "y",
            }
        ).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": _cookie(form),
            "Referer": f"http://{connection.host}:{connection.port}/subscribe",
        }
        tally.attempted.append(email)
        post_started = time.perf_counter()
        answer = await connection.request("POST", "/subscribe", headers, body)
        finished = time.perf_counter()
    except (HTTPError, OSError, KeyError) as error:
        tally.failures[type(error).__name__ + ": " + str(error)[:80]] += 1
        return
    if answer.status == 303:
        tally.accepted.append(email)
    tally.statuses[form.status] += 1
    tally.statuses[answer.status] += 1
    tally.done += 1
    tally.time("form", form_done - started)
    tally.time("post", finished - post_started)
    tally.time("signup", finished - (arrived if arrived is not None else started))


async def one_bare(connection: Connection, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        answer = await connection.request("GET", "/livez")
    except (HTTPError, OSError) as error:
        tally.failures[type(error).__name__ + ": " + str(error)[:80]] += 1
        return
    finished = time.perf_counter()
    tally.statuses[answer.status] += 1
    tally.done += 1
    tally.time("bare", finished - started)


async def closed_loop(spec: dict[str, Any]) -> Tally:
    """``concurrency`` clients back to back for ``seconds``; only requests that start inside
    the window count, and all of them are waited for."""
    tally = Tally()
    deadline = time.perf_counter() + spec["seconds"]

    async def client(number: int) -> None:
        connection = Connection(spec["host"], spec["port"])
        sequence = 0
        while time.perf_counter() < deadline:
            if spec["target"] == "bare":
                await one_bare(connection, tally)
            else:
                email = f"{spec['prefix']}-{number}-{sequence}@example.org"
                await one_signup(connection, email, tally)
            sequence += 1
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(spec["concurrency"])))
    tally.latencies["elapsed"] = [time.perf_counter() - started]
    return tally


async def open_loop(spec: dict[str, Any]) -> Tally:
    """A new visitor every 1/``rate`` s, each on a connection of their own, whether or not the
    earlier ones have been answered. A signup's time counts from its scheduled arrival, so a
    server falling behind shows in the figures (no coordinated omission)."""
    tally = Tally()
    rate = spec["rate"]
    total = int(rate * spec["seconds"])
    tasks: list[asyncio.Task[None]] = []

    async def visitor(number: int, arrival: float) -> None:
        connection = Connection(spec["host"], spec["port"])
        email = f"{spec['prefix']}-{number}@example.org"
        await one_signup(connection, email, tally, arrived=arrival)
        connection.close()

    start = time.perf_counter() + 0.05
    for number in range(total):
        arrival = start + number / rate
        delay = arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            tally.late += 1
        tasks.append(asyncio.create_task(visitor(number, arrival)))
    await asyncio.gather(*tasks)
    tally.latencies["elapsed"] = [time.perf_counter() - start]
    return tally


def client_main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    loop = closed_loop if spec["mode"] == "closed" else open_loop
    tally = asyncio.run(loop(spec))
    json.dump(tally.as_json(), sys.stdout)


# --------------------------------------------------------------------------------------------
# The orchestrator: database, SMTP sink, gunicorn, phases, checks, report
# --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children still running (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy since boot (Linux /proc/stat):
    everything but idle and waiting for I/O."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = ticks
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class Server:
    """gunicorn serving ``newsletter:create_app()``."""

    def __init__(self, env: dict[str, str], workers: int, threads: int, log: Path) -> None:
        self.port = free_port()
        worker_class = "gthread" if threads > 1 else "sync"
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "newsletter:create_app()",
        ]
        self.settings = f"--workers {workers} --worker-class {worker_class} --threads {threads}"
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                self.command, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        import http.client

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited:\n{self.log.read_text()}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.1)
        raise SystemExit(f"gunicorn did not answer /healthz:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """The load generator in its own process; its JSON report."""
    timeout = spec["seconds"] * 4 + 60
    finished = subprocess.run(
        [sys.executable, __file__, "--client", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if finished.returncode != 0:
        raise SystemExit(f"load generator failed:\n{finished.stderr}")
    report: dict[str, Any] = json.loads(finished.stdout)
    return report


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(share * len(ordered))) - 1))
    return ordered[index]


def ms(values: list[float], share: float) -> str:
    return f"{percentile(values, share) * 1000:7.1f} ms"


@dataclass
class Totals(Tally):
    """Several client reports of one kind added up, with the CPU time each process spent."""

    seconds: float = 0.0
    drained: float = 0.0
    cpu: Counter[str] = field(default_factory=Counter)
    # Wall-clock seconds of the runs as the orchestrator saw them (client start to the last
    # email out), and the machine's busy CPU seconds over them (every process, anyone's).
    wall: float = 0.0
    machine: float = 0.0

    def add(self, report: dict[str, Any]) -> None:
        self.done += report["done"]
        self.seconds += report["latencies"]["elapsed"][0]
        self.statuses.update({int(k): v for k, v in report["statuses"].items()})
        self.failures.update(report["failures"])
        for kind, values in report["latencies"].items():
            if kind != "elapsed":
                self.latencies.setdefault(kind, []).extend(values)
        self.accepted.extend(report["accepted"])
        self.attempted.extend(report["attempted"])
        self.late += report["late"]

    @property
    def rate(self) -> float:
        """Operations per second; a signup's time runs until its confirmation email is out."""
        elapsed = self.seconds + self.drained
        return self.done / elapsed if elapsed else 0.0

    @property
    def errors(self) -> int:
        bad = sum(n for status, n in self.statuses.items() if not 200 <= status < 400)
        return bad + sum(self.failures.values())

    def cpu_ms(self, name: str) -> float:
        """CPU milliseconds per operation spent by one part."""
        return self.cpu[name] * 1000 / self.done if self.done else float("nan")

    def cores_busy(self) -> str:
        """How many of the machine's cores each part kept busy while the load ran, and the
        whole machine (anyone's work, and the load generator's start-up) over the runs."""
        window = self.seconds + self.drained
        if not window or not self.wall:
            return "-"
        parts = [f"{name} {seconds / window:.2f}" for name, seconds in self.cpu.items()]
        machine = f"the whole machine {self.machine / self.wall:.2f}"
        return ", ".join(parts) + f"; {machine} of {os.cpu_count()} cores"

    def cpu_per_operation(self) -> str:
        if not self.done:
            return "-"
        parts = [f"{name} {seconds * 1000 / self.done:.2f}" for name, seconds in self.cpu.items()]
        return ", ".join(parts) + " ms CPU per operation"


class Bench:
    """The running parts: gunicorn, the SMTP sink, and a look at the outbox."""

    def __init__(self, server: Server, sink: Sink, database_url: str) -> None:
        from newsletter.db import create_db_engine

        self.server = server
        self.sink = sink
        self.engine = create_db_engine(database_url, sqlite_immediate=False)

    def waiting_confirmations(self) -> int:
        from sqlalchemy import func, select

        from newsletter.models import Delivery, DeliveryKind, DeliveryStatus

        with self.engine.connect() as connection:
            waiting = connection.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.kind == DeliveryKind.CONFIRM,
                    Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
                )
            )
        return int(waiting or 0)

    def drain(self, timeout: float = 120) -> float:
        """Wait until every confirmation email is handed to the mail server; the time taken."""
        started = time.perf_counter()
        while self.waiting_confirmations():
            if time.perf_counter() - started > timeout:
                raise SystemExit("confirmation emails still waiting after two minutes")
            time.sleep(0.01)
        return time.perf_counter() - started

    def run(self, totals: Totals, spec: dict[str, Any]) -> None:
        """One client run, then the confirmation emails it caused; CPU time of each part."""
        before, machine, started = self._cpu(), machine_busy(), time.perf_counter()
        totals.add(run_client(spec))
        if spec["target"] == "signup":
            totals.drained += self.drain()
        after = self._cpu()
        totals.wall += time.perf_counter() - started
        totals.machine += machine_busy() - machine
        totals.cpu.update({name: after[name] - before[name] for name in before})

    def _cpu(self) -> dict[str, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "gunicorn": cpu_seconds(self.server.process.pid),
            "smtp sink": cpu_seconds(self.sink.process.pid),
            "client": children.ru_utime + children.ru_stime,
        }

    def close(self) -> None:
        self.engine.dispose()


def check_database(database_url: str, accepted: list[str], attempted: list[str]) -> list[str]:
    """Problems found: accepted signups missing or stored twice, or stray rows."""
    from sqlalchemy import func, select

    from newsletter.db import create_db_engine
    from newsletter.models import ConsentEvent, ConsentKind, Delivery, DeliveryKind, Subscriber

    engine = create_db_engine(database_url, sqlite_immediate=False)
    problems = []
    with engine.connect() as connection:
        stored = Counter(connection.scalars(select(Subscriber.email)).all())
        given = Counter(
            connection.scalars(
                select(Subscriber.email)
                .join(ConsentEvent, ConsentEvent.subscriber_id == Subscriber.id)
                .where(ConsentEvent.kind == ConsentKind.GIVEN)
            ).all()
        )
        confirmations = connection.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.kind == DeliveryKind.CONFIRM)
        )
    engine.dispose()
    wanted = Counter(email.lower() for email in accepted)
    if max(wanted.values(), default=1) > 1:
        problems.append("the load generator reused an address")
    stored_keys = Counter(email.lower() for email in stored.elements())
    missing = [email for email in wanted if stored_keys[email] == 0]
    twice = [email for email, n in stored_keys.items() if n > 1]
    extra = set(stored_keys) - set(wanted) - {email.lower() for email in attempted}
    multiple_consent = [email for email, n in given.items() if n != 1]
    if missing:
        problems.append(f"{len(missing)} accepted signups not stored, e.g. {missing[0]}")
    if twice:
        problems.append(f"{len(twice)} addresses stored more than once")
    if extra:
        problems.append(f"{len(extra)} subscribers nobody signed up")
    if multiple_consent:
        problems.append(f"{len(multiple_consent)} subscribers without exactly one consent event")
    unanswered = set(stored_keys) - set(wanted)
    if confirmations != len(stored):
        problems.append(f"{confirmations} confirmation emails for {len(stored)} subscribers")
    summary = (
        f"database: {len(stored)} subscribers for {len(wanted)} accepted signups "
        f"({len(unanswered)} stored whose answer was lost), "
        f"{sum(given.values())} consent events, {confirmations} confirmation emails queued"
    )
    print(summary)
    return problems


def prepare_database(database_url: str | None, folder: Path) -> str:
    from newsletter.db import create_db_engine
    from newsletter.migrate import upgrade

    url = database_url or f"sqlite:///{folder / 'newsletter.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def environment(database_url: str, mail_port: int, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=database_url,
        NEWSLETTER_MAIL_URL=f"smtp://127.0.0.1:{mail_port}",
        NEWSLETTER_INSTANCE_PATH=str(folder),
        NEWSLETTER_SECRET_KEY=SECRET_KEY,
        NEWSLETTER_BASE_URL="https://news.example.org",
        NEWSLETTER_POSTAL_ADDRESS="1 Example Street, Example City",
        NEWSLETTER_SIGNUP_RATE_LIMIT="100000000 per minute",
        NEWSLETTER_SIGNUP_MIN_SECONDS="0",
        NEWSLETTER_LOG_LEVEL="WARNING",
    )
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=8, help="clients in the closed loop")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per gunicorn worker (1: sync workers)"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        client_main(options.client)
        return

    folder = Path(tempfile.mkdtemp(prefix="signup-load-"))
    sink = server = bench = None
    try:
        database_url = prepare_database(options.database_url, folder)
        sink = Sink()
        env = environment(database_url, sink.port, folder)
        server = Server(env, options.workers, options.threads, folder / "gunicorn.log")
        bench = Bench(server, sink, database_url)
        base = {"host": "127.0.0.1", "port": server.port, "concurrency": options.concurrency}
        # Warm-up: both workers load templates, open connections, fill caches.
        warm = Totals()
        for target in ("bare", "signup"):
            spec = {**base, "mode": "closed", "target": target, "seconds": 1.0, "prefix": "warm"}
            bench.run(warm, spec)
        bare, signups = Totals(), Totals()
        half = options.seconds / 2
        for round_number in range(2):
            bench.run(bare, {**base, "mode": "closed", "target": "bare", "seconds": half})
            spec = {
                **base,
                "mode": "closed",
                "target": "signup",
                "seconds": half,
                "prefix": f"peak{round_number}",
            }
            bench.run(signups, spec)
        paced_rate = signups.rate * PACED_SHARE
        paced = Totals()
        spec = {
            **base,
            "mode": "open",
            "target": "signup",
            "seconds": options.seconds,
            "rate": paced_rate,
            "prefix": "paced",
        }
        bench.run(paced, spec)
        bench.close()
        bench = None
        settings = server.settings
        server.stop()
        server = None
        mailed = sink.stop()
        sink = None
        report(options, database_url, settings, bare, signups, paced, paced_rate, mailed)
        gunicorn_log = (folder / "gunicorn.log").read_text(errors="replace")
        runs = (warm, signups, paced)
        problems = check_database(
            database_url,
            [email for totals in runs for email in totals.accepted],
            [email for totals in runs for email in totals.attempted],
        )
        for text in ("database is locked", "Traceback", " ERROR "):
            if text in gunicorn_log:
                line = next(line for line in gunicorn_log.splitlines() if text in line)
                problems.append(f"gunicorn's log has {text.strip()!r}: {line[:200]}")
        errors = bare.errors + signups.errors + paced.errors
        if errors:
            problems.append(f"{errors} answers were not 2xx/3xx or failed")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        print("checks: " + ("passed" if not problems else "FAILED"))
        if problems:
            raise SystemExit(1)
    finally:
        if bench is not None:
            bench.close()
        if server is not None:
            server.stop()
        if sink is not None:
            sink.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _times(label: str, values: list[float]) -> str:
    return f"  {label:<28} p50 {ms(values, 0.5)}   p99 {ms(values, 0.99)}   n={len(values)}"


def report(
    options: argparse.Namespace,
    database_url: str,
    server_settings: str,
    bare: Totals,
    signups: Totals,
    paced: Totals,
    paced_rate: float,
    mailed: int,
) -> None:
    database = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"{database}; gunicorn {server_settings}"
    )
    rounds = f"2 rounds of {options.seconds / 2:.1f} s each, alternating"
    print(f"closed loop, {options.concurrency} clients, {rounds}")
    print(f"bare GET /livez:    {bare.rate:8.1f} requests/s   non-2xx/3xx {bare.errors}")
    print(_times("answer", bare.latencies.get("bare", [])))
    print(f"signups:            {signups.rate:8.1f} signups/s    non-2xx/3xx {signups.errors}")
    print(_times("form GET", signups.latencies.get("form", [])))
    print(_times("signup POST", signups.latencies.get("post", [])))
    print(_times("whole signup (GET+POST)", signups.latencies.get("signup", [])))
    print(
        f"  confirmation emails still going out after the rounds: {signups.drained:.2f} s "
        "(counted in the signup time)"
    )
    print(f"  bare:    {bare.cpu_per_operation()}")
    print(f"  signups: {signups.cpu_per_operation()}")
    print(f"  cores busy during the signup rounds: {signups.cores_busy()}")
    server_ms = signups.cpu_ms("gunicorn")
    verdict = "met" if server_ms <= CPU_TARGET_MS else "MISSED"
    print(
        f"server CPU per signup (form, POST, confirmation email): {server_ms:.2f} ms  "
        f"(target <= {CPU_TARGET_MS:.0f} ms: {verdict})"
    )
    ratio = signups.rate / bare.rate if bare.rate else 0.0
    verdict = "met" if ratio >= SIGNUP_TARGET_RATIO else "MISSED"
    print(
        f"ratio signups/s : bare requests/s = {ratio:.3f}  "
        f"(target >= {SIGNUP_TARGET_RATIO}: {verdict})"
    )
    print(f"  counting requests (2 per signup): {2 * ratio:.3f}")
    print(
        f"open loop at {paced_rate:.1f} signups/s ({PACED_SHARE:.0%} of peak) for "
        f"{options.seconds:.0f} s: {paced.done} signups, non-2xx/3xx {paced.errors}, "
        f"late arrivals {paced.late}"
    )
    paced_form = paced.latencies.get("form", [])
    paced_post = paced.latencies.get("post", [])
    print(_times("form GET", paced_form))
    print(_times("signup POST", paced_post))
    print(_times("whole signup (from arrival)", paced.latencies.get("signup", [])))
    worst = max(percentile(paced_form, 0.99), percentile(paced_post, 0.99)) * 1000
    verdict = "met" if worst < P99_TARGET_MS else "MISSED"
    print(
        f"p99 per request at 80% of peak: {worst:.1f} ms  "
        f"(target < {P99_TARGET_MS:.0f} ms: {verdict})"
    )
    print(f"confirmation emails received by the SMTP sink: {mailed}")


if __name__ == "__main__":
    main()
