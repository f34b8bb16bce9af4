"""Benchmark: `newsletter digest send` with and without DKIM signing, side by side in one run
(and plain smtplib beside them, as bench/send.py did before it compared ways of sending).

    .venv/bin/python bench/send_dkim.py --dkim                # also the same send, DKIM-signed
    .venv/bin/python bench/send_dkim.py --dkim --dkim-ed25519 --skip-baseline

It creates a fresh instance with N active subscribers and a digest of 5 articles (from
examples/feed.xml), starts an SMTP sink in its own process on 127.0.0.1, and times the real
`newsletter digest send` command. Then, against a fresh sink, it sends the same number of
pre-built messages of the same size with plain smtplib over the same number of reused
connections. It prints both rates, their ratio, the time to queue the deliveries and the send
process's peak RSS. With ``--dkim`` it also sends the digest again from a second instance
whose messages are DKIM-signed (RSA-2048 and Ed25519) and prints the ratio of the two rates.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.send import fill, one_message  # noqa: E402  (after the path set-up above)
from bench.smtp_sink import Sink  # noqa: E402

NEWSLETTER = [sys.executable, "-m", "newsletter"]
CHUNK = 50_000


def run(
    command: list[str], env: dict[str, str], stop_after: float | None = None
) -> tuple[str, float, int, float]:
    """Run ``command``; return its output, wall time, peak RSS in KiB and CPU seconds.
    With ``stop_after``, it gets SIGINT (Ctrl-C) after that many seconds."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if stop_after is not None:
        timer = threading.Timer(stop_after, process.send_signal, (signal.SIGINT,))
        timer.start()
    _, status, usage = os.wait4(process.pid, 0)
    if stop_after is not None:
        timer.cancel()
    seconds = time.monotonic() - started
    assert process.stdout is not None
    output = process.stdout.read().decode()
    process.stdout.close()
    if os.waitstatus_to_exitcode(status) not in (0, 130 if stop_after else 0):
        raise SystemExit(f"{' '.join(command)} failed:\n{output}")
    return output, seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def set_up(env: dict[str, str], subscribers: int) -> int:
    """The schema, a digest and the subscribers, filled in by a child process.

    Filling a million rows makes a process large, and a process started later by a large one
    reports that size as its own peak: so this bench process stays small."""
    run([*NEWSLETTER, "db", "upgrade"], env)
    run([*NEWSLETTER, "articles", "import", str(ROOT / "examples" / "feed.xml")], env)
    output = run([*NEWSLETTER, "digest", "create", "--max", "5"], env)[0]
    digest_id = int(re.search(r"\d+", output).group(0))  # type: ignore[union-attr]
    run([sys.executable, __file__, "--add-subscribers", str(subscribers), str(digest_id)], env)
    return digest_id


def plain_smtplib(port: int, data: bytes, count: int, connections: int) -> float:
    """Send ``count`` copies of ``data`` over ``connections`` reused smtplib connections."""
    import smtplib

    def worker(numbers: range) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for n in numbers:
                smtp.sendmail("news@example.org", [f"reader{n}@example.org"], data)

    shares = [range(i, count, connections) for i in range(connections)]
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database-url", help="default: SQLite in a temporary instance")
    parser.add_argument("--skip-baseline", action="store_true", help="only time our send")
    parser.add_argument(
        "--stop-after",
        type=float,
        help="send Ctrl-C to the send after this many seconds (peak memory of a partial run)",
    )
    parser.add_argument(
        "--dkim", action="store_true", help="also time the same send with DKIM signing (SQLite)"
    )
    parser.add_argument(
        "--dkim-ed25519", action="store_true", help="with --dkim, add the Ed25519 signature"
    )
    parser.add_argument("--add-subscribers", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dkim and args.database_url:
        parser.error("--dkim compares two fresh SQLite instances; leave out --database-url")
    if args.add_subscribers is not None:
        # The subscribers (and the one digest) as bench/send.py fills them.
        fill(args.add_subscribers[0], args.add_subscribers[1], 1)
        return

    instance = Path(tempfile.mkdtemp(prefix="newsletter-bench-"))
    sink = Sink()
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_INSTANCE_PATH=str(instance),
        NEWSLETTER_MAIL_URL=f"smtp://127.0.0.1:{sink.port}",
        NEWSLETTER_BASE_URL="https://news.example.org",
        NEWSLETTER_POSTAL_ADDRESS="1 Example Street, Example City",
        NEWSLETTER_SECRET_KEY="benchmark-secret-key",
    )
    if args.database_url:
        env["NEWSLETTER_DATABASE_URL"] = args.database_url
    os.environ.update(env)
    try:
        digest_id = set_up(env, args.subscribers)
        data = one_message(digest_id)
        output, seconds, peak_kib, cpu = run(
            [*NEWSLETTER, "digest", "send", str(digest_id), "--workers", str(args.workers)],
            env,
            args.stop_after,
        )
        received = sink.stop()
        queued = re.search(r"for (\d+) subscribers in ([\d.]+) s", output)
        phase = re.search(r"queued \d+ in ([\d.]+) s", output)
        send_seconds = float(phase.group(1)) if phase else seconds
        ours = received / send_seconds
        print(f"subscribers:            {args.subscribers}")
        print(f"database:               {args.database_url or 'sqlite'}")
        print(f"message size:           {len(data)} bytes")
        if queued:
            print(f"queueing:               {queued.group(1)} deliveries in {queued.group(2)} s")
        print(
            f"newsletter digest send: {received} messages; the command took {seconds:.1f} s "
            f"in all, its sending phase {send_seconds:.1f} s = {ours:.0f} msg/s"
        )
        print(f"  peak RSS of the send: {peak_kib / 1024:.0f} MiB")
        print(f"  CPU of the send:      {cpu:.1f} s ({cpu / max(received, 1) * 1000:.2f} ms/msg)")
        if args.dkim:
            signed_send(env, args, ours)
        if args.skip_baseline:
            return
        baseline_sink = Sink()
        baseline_seconds = plain_smtplib(baseline_sink.port, data, received, args.workers)
        baseline_received = baseline_sink.stop()
        theirs = baseline_received / baseline_seconds
        print(
            f"plain smtplib:          {baseline_received} messages in {baseline_seconds:.1f} s"
            f" = {theirs:.0f} msg/s over {args.workers} connections"
        )
        print(f"ratio (ours / smtplib): {ours / theirs:.2f} (sending phases)")
        print(f"ratio, whole command:   {received / seconds / theirs:.2f}")
    finally:
        if sink.process.poll() is None:
            sink.stop()
        shutil.rmtree(instance, ignore_errors=True)


# --- DKIM: the same send from a second instance that signs every message ---------------------


def signed_send(unsigned_env: dict[str, str], args: argparse.Namespace, unsigned: float) -> None:
    """Set up a second instance like the first, with DKIM keys, send, print both rates."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from newsletter.mail.dkim import new_rsa_key

    instance = Path(tempfile.mkdtemp(prefix="newsletter-bench-dkim-"))
    (instance / "dkim.pem").write_bytes(new_rsa_key())
    ed25519_pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (instance / "dkim-ed25519.pem").write_bytes(ed25519_pem)
    sink = Sink()
    env = {
        **unsigned_env,
        "NEWSLETTER_INSTANCE_PATH": str(instance),
        "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{sink.port}",
        "NEWSLETTER_DKIM_KEY_FILE": str(instance / "dkim.pem"),
        "NEWSLETTER_DKIM_SELECTOR": "bench",
    }
    if args.dkim_ed25519:
        env["NEWSLETTER_DKIM_ED25519_KEY_FILE"] = str(instance / "dkim-ed25519.pem")
        env["NEWSLETTER_DKIM_ED25519_SELECTOR"] = "bench-ed25519"
    env.pop("NEWSLETTER_DATABASE_URL", None)
    try:
        digest_id = set_up(env, args.subscribers)
        output, seconds, _, cpu = run(
            [*NEWSLETTER, "digest", "send", str(digest_id), "--workers", str(args.workers)], env
        )
        received = sink.stop()
        phase = re.search(r"queued \d+ in ([\d.]+) s", output)
        signed = received / (float(phase.group(1)) if phase else seconds)
        keys = "RSA-2048 + Ed25519" if args.dkim_ed25519 else "RSA-2048"
        print(
            f"DKIM-signed ({keys}): {received} messages = {signed:.0f} msg/s, "
            f"CPU {cpu / max(received, 1) * 1000:.2f} ms/msg"
        )
        print(f"ratio (signed / unsigned): {signed / unsigned:.2f} (sending phases)")
    finally:
        if sink.process.poll() is None:
            sink.stop()
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
