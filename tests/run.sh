#!/usr/bin/env bash
# Install everything the test suite needs on Debian 12 (apt packages and a venv in .venv), then
# run lint, type checks and every test. Usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/dev-setup.sh "python3-dev mosquitto mosquitto-clients dataset-fashion-mnist systemd openssl chromium chromium-driver" build,test

echo "== ruff, mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

echo "== pytest"
exec .venv/bin/python -m pytest "$@"
