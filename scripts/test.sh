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
.venv/bin/python -m pytest -q -n 2 tests/unit tests/agents
# The stack's broker: Apache Kafka where Java 17 runs it (CI), else Tansu, said why.
MODELVIEW_BROKER_PROFILE=${MODELVIEW_BROKER_PROFILE:-$(.venv/bin/python -m app.stack.kafka choose)}
export MODELVIEW_BROKER_PROFILE
echo "integration and e2e tests on the $MODELVIEW_BROKER_PROFILE broker"
# Three at a time on two cores: the e2e tests spend much of their time waiting (for groups
# to form, for workers to start), and the suite takes 10.5 minutes rather than 12 this way.
.venv/bin/python -m pytest -q -n 3 --durations=12 tests/integration tests/e2e
