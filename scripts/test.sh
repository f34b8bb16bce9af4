#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine with Python, then runs lint,
# formatting, types, import contracts and the whole test suite (SQLite and PostgreSQL, SMTP,
# browser, Redis, SpamAssassin).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k signup -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The spam score of the messages we send is checked with SpamAssassin's local rules.
command -v spamassassin >/dev/null 2>&1 || missing+=(spamassassin)
# The IMAP server the bounce mailbox tests read reports from.
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The import contracts in pyproject.toml: imports run one way, and Flask stays at the top.
.venv/bin/lint-imports
# PostgreSQL is started by the test session itself (tests/support/postgres.py) as the
# postgres user when run as root, and stopped at the end; so is Redis (tests/support/redis.py),
# on 127.0.0.1 and a free port, for the tests of limits shared by several web instances, and
# Dovecot (tests/support/dovecot.py), as the dovecot user when run as root, for the bounce
# mailbox over IMAP.
# SpamAssassin runs once per checked message, offline (`spamassassin -t -L`); where it is
# missing (when this script could not install it) those tests fail.
# Two processes (pytest-xdist), one per core of the machines this runs on: the suite takes
# about half as long, and each process starts its own servers.
.venv/bin/pytest -n 2 "$@"
