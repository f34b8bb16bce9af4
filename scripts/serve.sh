#!/usr/bin/env bash
# Sets up the service on its embedded defaults (SQLite in instance/, mail into the maildir
# instance/outbox/) and serves it on http://localhost:5000/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/newsletter db upgrade
echo "Serving on http://localhost:5000/ (confirmation emails land in instance/outbox/new/)"
exec .venv/bin/newsletter run --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
