#!/usr/bin/env bash
# Sets up the service on its embedded defaults (SQLite in instance/, mail into the maildir
# instance/outbox/) and serves it on http://localhost:5000/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
PORT="${PORT:-5000}"
# Links in emails point at the port actually served, unless a base URL is set.
export NEWSLETTER_BASE_URL="${NEWSLETTER_BASE_URL:-http://localhost:${PORT}}"
.venv/bin/newsletter db upgrade
echo "Serving on http://localhost:${PORT}/ (confirmation emails land in instance/outbox/new/)"
exec .venv/bin/newsletter run --host "${HOST:-127.0.0.1}" --port "${PORT}"
