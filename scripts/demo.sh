#!/usr/bin/env bash
# The README's demo command: set everything up, then run `modelview demo` on the local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/modelview demo "$@"
