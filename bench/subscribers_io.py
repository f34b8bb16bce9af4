"""Time and peak memory of ``newsletter subscribers import`` and ``export`` on a large list.

Generates a CSV of ``--rows`` people (1,000,000 by default), then runs, each as its own
process against a fresh SQLite instance in a temporary folder:

    newsletter db upgrade
    newsletter subscribers import people.csv --consent-note "..."
    newsletter subscribers export --out export.csv

and prints the wall time and peak resident memory (RSS) of each. The target is under 200 MB
for both import and export, whatever the number of rows.

    .venv/bin/python bench/subscribers_io.py [--rows N] [--keep] [--database-url URL]
    .venv/bin/python bench/subscribers_io.py --against /tmp/base    # and a checkout's code

``--database-url`` runs against another database instead (an empty one, PostgreSQL say); it
is migrated first. ``--topics N`` adds N topics (``newsletter topics add``, not measured)
and a ``topics`` column giving each row a mix of them (none on every fifth row, one to three
slugs on the others), which the import stores and the export writes back. ``--against PATH``
runs the same steps again with the code of another checkout (a worktree of the previous
commit, say) on the same file, on a fresh SQLite file or ``--against-database-url`` (another
empty database), and prints the rate of each step against it. The CPU time of each process
(user and system) is printed too: on a machine shared with other work it varies less than
the wall time.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FIRST_NAMES = ["Ada", "Grace", "Alan", "Zoë", "José", "Łucja", "Nnamdi", "Mei", "Olu", "Sven"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Ibáñez", "O'Brien", "Nakamura", "Okafor", "Smith"]
TARGET_MB = 200


@dataclass(frozen=True)
class Measurement:
    step: str
    seconds: float
    peak_rss_mb: float
    exit_status: int
    cpu_seconds: float = 0.0


def topic_slug(number: int) -> str:
    return f"topic-{number}"


def row_topics(number: int, topics: int) -> str:
    """None on every fifth row, else one to three of the topics, separated by spaces."""
    if number % 5 == 0:
        return ""
    count = 1 + number % 3
    return " ".join(topic_slug((number + step * 3) % topics) for step in range(min(count, topics)))


def generate(path: Path, rows: int, topics: int = 0) -> None:
    """A realistic import file: mixed names (some non-ASCII), dates and sources, and with
    ``topics`` a topics column."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        header = ["email", "first_name", "last_name", "consented_at", "source"]
        writer.writerow(header + (["topics"] if topics else []))
        for number in range(rows):
            row = [
                f"person.{number}@example{number % 97}.org",
                FIRST_NAMES[number % len(FIRST_NAMES)],
                LAST_NAMES[number % len(LAST_NAMES)],
                f"2024-{1 + number % 12:02d}-{1 + number % 28:02d}T10:00:00Z",
                "paper form at the 2024 meeting" if number % 3 else "",
            ]
            writer.writerow(row + ([row_topics(number, topics)] if topics else []))


def run(step: str, args: list[str], env: dict[str, str], log: Path) -> Measurement:
    """Run the newsletter CLI with ``args`` and measure that one process (in the folder of
    ``PYTHONPATH`` when set, so that checkout's code is what runs)."""
    command = [sys.executable, "-c", "from newsletter.cli.main import main; main()", *args]
    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=env.get("PYTHONPATH") or None,
        )
        # wait4 gives this child's own resource usage (RUSAGE_CHILDREN would be the largest
        # of all children so far).
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in kilobytes on Linux.
    cpu = usage.ru_utime + usage.ru_stime
    return Measurement(step, seconds, usage.ru_maxrss / 1024, process.returncode, cpu)


def run_steps(
    people: Path, exported: Path, env: dict[str, str], folder: Path, label: str, topics: int = 0
) -> list[Measurement] | None:
    """db upgrade, import, export: each measured; None when one fails (its log printed).
    ``topics`` topics are added between the upgrade and the import, not measured."""
    steps = [
        ("db upgrade", ["db", "upgrade"]),
        ("import", ["subscribers", "import", str(people), "--consent-note", "benchmark import"]),
        ("export", ["subscribers", "export", "--out", str(exported)]),
    ]
    results = []
    for step, args in steps:
        log = folder / f"{label}-{step.replace(' ', '-')}.log"
        measured = run(step, args, env, log)
        results.append(measured)
        print(f"{label} {step}: done in {measured.seconds:.1f} s", flush=True)
        if measured.exit_status != 0:
            print(f"{step} failed (exit {measured.exit_status}):\n{log.read_text()[-2000:]}")
            return None
        if step == "db upgrade" and not add_topics(topics, env, folder, label):
            return None
    return results


def add_topics(topics: int, env: dict[str, str], folder: Path, label: str) -> bool:
    for number in range(topics):
        log = folder / f"{label}-topic-{number}.log"
        slug = topic_slug(number)
        args = ["topics", "add", slug, "--name", f"Topic {number}", "--match", f"Topic {number}"]
        if run("topics add", args, env, log).exit_status != 0:
            print(f"topics add failed:\n{log.read_text()[-2000:]}")
            return False
    return True


def table(results: list[Measurement], rows: int, label: str) -> None:
    print(f"\n{label}, load average {' '.join(f'{n:.1f}' for n in os.getloadavg())}")
    print(
        f"{'step':<12} {'rows':>10} {'wall s':>8} {'rows/s':>9} {'CPU s':>7} "
        f"{'CPU µs/row':>11} {'peak RSS MB':>12}"
    )
    for measured in results:
        count = rows if measured.step != "db upgrade" else 0
        rate = f"{count / measured.seconds:,.0f}" if count else "-"
        per_row = f"{measured.cpu_seconds / count * 1e6:.1f}" if count else "-"
        print(
            f"{measured.step:<12} {count:>10,} {measured.seconds:>8.1f} {rate:>9} "
            f"{measured.cpu_seconds:>7.1f} {per_row:>11} {measured.peak_rss_mb:>12.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="people in the file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--database-url", help="an empty database to use instead of a fresh SQLite file"
    )
    parser.add_argument(
        "--topics", type=int, default=0, help="add this many topics and a topics column"
    )
    parser.add_argument("--against", type=Path, help="a checkout to measure the same way")
    parser.add_argument("--against-database-url", help="an empty database for --against")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="newsletter-bench-"))
    env = {
        **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        "NEWSLETTER_INSTANCE_PATH": str(folder / "instance"),
        "NEWSLETTER_MAIL_URL": f"maildir://{folder / 'outbox'}",
    }
    env.pop("NEWSLETTER_DATABASE_URL", None)
    if options.database_url:
        env["NEWSLETTER_DATABASE_URL"] = options.database_url
    people = folder / "people.csv"
    exported = folder / "export.csv"
    try:
        started = time.perf_counter()
        generate(people, options.rows, options.topics)
        size_mb = people.stat().st_size / 1e6
        print(
            f"generated {options.rows:,} rows ({size_mb:.0f} MB) "
            f"in {time.perf_counter() - started:.1f} s; database: "
            f"{'given URL' if options.database_url else 'fresh SQLite file'}"
            + (f"; {options.topics} topics" if options.topics else "")
            + f"; load average {' '.join(f'{n:.1f}' for n in os.getloadavg())}",
            flush=True,
        )
        results = run_steps(people, exported, env, folder, "this checkout", options.topics)
        if results is None:
            return 1
        with exported.open(encoding="utf-8", newline="") as handle:
            exported_rows = 0
            with_topics = 0
            for row in csv.DictReader(handle):
                exported_rows += 1
                with_topics += bool(row.get("topics"))
        table(results, options.rows, "this checkout")
        if options.against:
            other_env = {
                **env,
                "NEWSLETTER_INSTANCE_PATH": str(folder / "instance-against"),
                "PYTHONPATH": str(options.against),
            }
            other_env.pop("NEWSLETTER_DATABASE_URL", None)
            if options.against_database_url:
                other_env["NEWSLETTER_DATABASE_URL"] = options.against_database_url
            theirs = run_steps(
                people, folder / "export-against.csv", other_env, folder, "against", options.topics
            )
            if theirs is None:
                return 1
            table(theirs, options.rows, f"against {options.against}")
            print()
            for ours, other in zip(results[1:], theirs[1:], strict=True):
                print(
                    f"{ours.step}: {other.seconds / ours.seconds:.2f}x the rows per second "
                    f"(wall time); CPU time {other.cpu_seconds / ours.cpu_seconds:.2f}x less"
                )
        print(f"\nexported rows: {exported_rows:,} (expected {options.rows:,})")
        expected_topics = sum(1 for n in range(options.rows) if n % 5) if options.topics else 0
        if options.topics:
            print(f"exported rows with topics: {with_topics:,} (expected {expected_topics:,})")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"largest child process overall: {children:.1f} MB (target: under {TARGET_MB} MB)")
        worst = max(m.peak_rss_mb for m in results)
        print(f"load average at the end: {' '.join(f'{n:.1f}' for n in os.getloadavg())}")
        ok = worst < TARGET_MB and exported_rows == options.rows and with_topics == expected_topics
        print("within target" if ok else "NOT within target")
        return 0 if ok else 1
    finally:
        if options.keep:
            print(f"files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
