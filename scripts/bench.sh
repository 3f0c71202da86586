#!/usr/bin/env bash
# Benchmarks: each prints a ratio against a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m bench.ingest "$@"
