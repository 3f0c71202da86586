"""Shared fixtures: the real local stack and worker processes, started by the project's own code."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.services import WorkerProcess, stack_settings, start_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Settings]:
    """A fresh broker and object store on free ports: each test gets an empty log."""
    settings = stack_settings(tmp_path / "data")
    stack = start_stack(settings)
    try:
        yield settings
    finally:
        # Killed, not stopped: the test's data goes with it, and a clean stop cost 3-11 s
        # a test (Kafka's controlled shutdown), minutes of the suite.
        stack.down(grace=0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[Any]:
    """A failed test's report carries its workers' logs: CI keeps the report, not tmp dirs."""
    report = yield
    if report.failed:
        for process in getattr(item, "workers", []):
            report.sections.append((f"log of {process.log_path.name}", process.log_digest()))
    return report


@pytest.fixture
def worker(
    stack: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    request.node.workers = started

    def start(settings: Settings | None = None, alone: bool = True) -> WorkerProcess:
        """A worker; `alone`: wait until it holds every partition (else see
        `wait_cluster_ready`, for a member of a cluster)."""
        process = WorkerProcess(settings or stack, tmp_path / f"worker-{len(started)}.log").start()
        started.append(process)
        if alone:
            process.wait_ready()
        return process

    yield start
    for process in started:
        process.kill()
