#!/usr/bin/env bash
# The README's demo command: set everything up, then run `modelview demo` on the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Apache Kafka where Java 17 runs it, else Tansu (the reason is printed); a set value wins.
MODELVIEW_BROKER_PROFILE=${MODELVIEW_BROKER_PROFILE:-$(.venv/bin/python -m app.stack.kafka choose)}
export MODELVIEW_BROKER_PROFILE
exec .venv/bin/modelview demo "$@"
