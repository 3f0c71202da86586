#!/usr/bin/env bash
# One idempotent setup step shared by the README's commands: a venv in .venv with the project installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.modelview-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # Every extra (keras, local, demo) and the dev tools, at the versions in constraints.txt.
    .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
    touch "$stamp"
fi
# The fold's modules compiled to C (app/native): about a minute, and again only after they
# change. Without a C compiler they run as Python: slower, the same results.
if ! .venv/bin/python -m app.native status >/dev/null; then
    .venv/bin/python -m app.native build ||
        echo "modelview: the fold could not be compiled; it runs as Python" >&2
fi
# Apache Kafka's jars for the local stack (app/stack/kafka-runtime.pom.xml), and the class archive
# its broker starts from (about 7 s, once), where Java and Maven are found; elsewhere the stack runs the Tansu broker, and `python -m app.stack.kafka choose` says so.
if command -v java >/dev/null && command -v mvn >/dev/null; then
    .venv/bin/python -m app.stack.kafka fetch >/dev/null
fi
