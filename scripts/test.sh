#!/usr/bin/env bash
# The README's test command: set everything up, lint, type-check, run every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Unit and agent tests first: fast, and they say most when something is wrong.
.venv/bin/python -m pytest -q tests/unit tests/agents
.venv/bin/python -m pytest -q --durations=12 tests/integration tests/e2e
