"""What every benchmark shares: the header that dates a result, and counting a worker's records."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime

from tests.services import WorkerProcess


def machine_line() -> str:
    """Date and machine: BENCHMARKS.md records results with both."""
    return (
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  machine: {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} cores)"
    )


def processed(worker: WorkerProcess) -> int:
    """Records the worker has finished with: folded, skipped as duplicates, or dead-lettered."""
    counts = (worker.health() or {}).get("ingest", {})
    return sum(counts.get(k, 0) for k in ("applied", "duplicates", "dead_letters"))


def wait_processed(worker: WorkerProcess, total: int, within: float = 900.0) -> float:
    """Seconds until the worker has processed `total` records."""
    started = time.perf_counter()
    deadline = started + within
    while time.perf_counter() < deadline:
        if processed(worker) >= total:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"worker did not process {total} records in {within}s\n{worker.log_tail()}")
