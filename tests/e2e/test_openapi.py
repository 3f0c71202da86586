"""The API as described: schemathesis against a live worker, from /openapi.json."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.client import HttpClient
from app.settings import Settings
from app.web.openapi import document
from tests.services import WorkerProcess

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
# Schemathesis's `st`, with anyio imported first, on the main thread. Imported later by
# one of its two workers, anyio's lazy importer compiles its own source to an AST while
# the other worker may be compiling too, and CPython 3.11.7's AST constructor can then
# fail (CPython gh-106905, seen in threaded programs): a run failed once with
# "SystemError: AST constructor recursion depth mismatch" (a fresh clone, 2026-12-06).
ST = "import sys, anyio; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"


async def test_no_5xx_and_every_answer_as_described(
    stack: Settings, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    process = worker(stack.with_(api_token="openapi-test-token"))
    # The real worker, as the unit tests say: writes need the token, reads do not.
    async with HttpClient(process.url) as anonymous:
        status, body = await anonymous.request("POST", "/v1/tags", [])
        assert status == 401 and "bearer token" in body["error"]
        assert (await anonymous.get("/v1/datasets"))[0] == 200
    async with HttpClient(process.url, token="wrong") as wrong:
        assert (await wrong.request("POST", "/v1/tags", []))[0] == 403
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            ST,
            "run",
            f"{process.url}/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "50",
            "--seed",
            "2026",
            "--workers",
            "2",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "20",
            "--header",
            "Authorization: Bearer openapi-test-token",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert cases and int(cases.group(1)) == int(cases.group(2)) >= 500, done.stdout[-2000:]
    described = {
        f"{method.upper()} {path}"
        for path, methods in document()["paths"].items()
        for method in methods
    }
    report = await asyncio.to_thread(lambda: next(tmp_path.glob("junit-*.xml")).read_text())
    tested = set(re.findall(r'<testcase[^>]*name="([^"]+)"', report))
    # Every operation, except the description itself, which schemathesis leaves out.
    assert tested == described - {"GET /openapi.json"}, tested ^ described
    assert (process.health() or {}).get("status") == "ok"  # the worker is still up
