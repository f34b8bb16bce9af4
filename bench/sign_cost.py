"""CPU time DKIM signing adds to each digest message, in one thread of one process.

    .venv/bin/python bench/sign_cost.py [--messages 3000]
    cd /tmp/other-checkout && /work/main/.venv/bin/python bench/sign_cost.py   # its code

It makes a fresh instance with the digest of examples/feed.xml (5 articles), then builds
the message for ``--messages`` readers twice, without and with an RSA-2048 key, each best of
three, and prints the CPU time a message of each and the difference: what a signature
costs, of which the RSA-2048 signature itself (OpenSSL) is about 0.25 ms on this machine
(``openssl speed rsa2048``). No sending: the rates and their ratio are bench/send.py's
(``--only chunking,signed``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path.cwd()
sys.path.insert(0, str(ROOT))
NEWSLETTER = [sys.executable, "-m", "newsletter"]


def cpu_per_message(messages: int) -> float:
    """Best of three: CPU milliseconds to build one message, with the instance's settings."""
    from sqlalchemy import select

    from newsletter import create_app
    from newsletter.mail.digest import prepare_digest
    from newsletter.models import Digest
    from newsletter.people import Person
    from newsletter.runtime import get_runtime

    runtime = get_runtime(create_app())
    with runtime.sessions() as session:
        digest = session.scalars(select(Digest)).one()
        prepared = prepare_digest(session, runtime.site, runtime.renderer, digest)
    people = [
        Person(n, f"{n:016x}", f"reader{n}@example.org", f"Reader{n}", "Example")
        for n in range(messages)
    ]
    for person in people[:50]:
        prepared.outgoing_for(person, f"<warm.{person.id}@example.org>")
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for person in people:
            # Its bytes: a signed message is finished when they are asked for.
            _ = prepared.outgoing_for(person, f"<bench.{person.id}@example.org>").data
        best = min(best, (time.process_time() - started) / messages * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    instance = Path(tempfile.mkdtemp(prefix="newsletter-sign-cost-"))
    try:
        os.environ.update(
            NEWSLETTER_INSTANCE_PATH=str(instance),
            NEWSLETTER_MAIL_URL="console://",
            NEWSLETTER_BASE_URL="https://news.example.org",
            NEWSLETTER_POSTAL_ADDRESS="1 Example Street, Example City",
            NEWSLETTER_SECRET_KEY="benchmark-secret-key",
        )
        for command in (
            ["db", "upgrade"],
            ["articles", "import", str(ROOT / "examples" / "feed.xml")],
            ["digest", "create", "--max", "5"],
        ):
            subprocess.run([*NEWSLETTER, *command], check=True, capture_output=True)
        unsigned = cpu_per_message(args.messages)
        from newsletter.mail.dkim_keys import new_rsa_key

        (instance / "dkim.pem").write_bytes(new_rsa_key())
        os.environ.update(
            NEWSLETTER_DKIM_KEY_FILE=str(instance / "dkim.pem"), NEWSLETTER_DKIM_SELECTOR="bench"
        )
        signed = cpu_per_message(args.messages)
        print(f"code: {ROOT}")
        print(f"building a message, unsigned:     {unsigned:.3f} ms CPU")
        print(f"building and signing (RSA-2048):  {signed:.3f} ms CPU")
        print(f"what signing adds:                {signed - unsigned:.3f} ms CPU a message")
    finally:
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    if not (ROOT / "newsletter").is_dir():
        sys.exit("Error: run it from a checkout's root: python bench/sign_cost.py")
    main()
