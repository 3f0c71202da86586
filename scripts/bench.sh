#!/usr/bin/env bash
# Benchmarks: each prints a ratio against a baseline measured in the same run.
# `bash scripts/bench.sh` runs them all; `bash scripts/bench.sh cold` runs one (ingest, ceiling, scale, fold, cold, training, serving, memory, models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for name in "${@:-ingest ceiling scale fold cold training serving memory models}"; do
    for bench in $name; do
        echo "== bench.$bench"
        .venv/bin/python -m "bench.$bench"
    done
done
