"""Cold segments on the real stack: every logged record lands in S3 exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable

import pytest

from app.settings import Settings
from app.stack.services import Stack
from app.topics import LOGGED, PREDICTIONS, TAGS
from tests.coldlog import kafka_records, publish, s3_rows
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def records(n: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """`n` records over both topics; the flusher copies bytes, so they need not be valid events."""
    out = []
    for i in range(n):
        key = str(uuid.UUID(int=seed * 10_000_000 + i)).encode()
        topic = PREDICTIONS if i % 3 else TAGS
        out.append((topic, key, b'{"n": %d, "pad": "%s"}' % (i, b"x" * (i % 200))))
    return out


def flush(worker: WorkerProcess) -> dict[str, object]:
    health = worker.health() or {}
    return health.get("flush", {})  # type: ignore[return-value]


async def assert_s3_equals_kafka(settings: Settings, expected: int) -> None:
    in_kafka = await kafka_records(settings, LOGGED)
    assert len(in_kafka) == expected
    rows, seen = await s3_rows(settings)
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, f"{len(twice)} records are in S3 more than once, e.g. {list(twice)[:3]}"
    assert set(rows) == set(in_kafka), (
        f"missing from S3: {len(set(in_kafka) - set(rows))}, only in S3: {len(set(rows) - set(in_kafka))}"
    )
    assert rows == in_kafka  # same key, value bytes and timestamp


async def wait_flushed(
    settings: Settings, worker: WorkerProcess, expected: int, within: float
) -> None:
    async def done() -> bool:
        status = flush(worker)
        if status.get("lag_records") != 0:
            return False
        _, seen = await s3_rows(settings)
        return len(seen) >= expected

    await wait_until(done, within=within, what=f"{expected} records flushed")


async def test_every_record_flushed_once_across_a_kill_during_flush(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(flush_records=2_000, flush_seconds=1.0)
    first = worker(settings)
    batch = records(50_000, seed=1)
    await publish(settings, batch[:25_000])
    # Kill -9 while segments are being written: some are in S3, more are on their way.
    await wait_until(
        lambda: (flush(first).get("segments_written") or 0) >= 3,
        within=60,
        what="a few segments",  # type: ignore[operator]
    )
    assert (flush(first).get("lag_records") or 0) > 0  # type: ignore[operator]
    first.kill()
    second = worker(settings)
    await publish(settings, batch[25_000:])
    await wait_flushed(settings, second, 50_000, within=120)
    await assert_s3_equals_kafka(settings, 50_000)


async def test_object_store_away_for_30_seconds_loses_nothing(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(flush_records=1_000, flush_seconds=0.5)
    live = worker(settings)
    batch = records(12_000, seed=2)
    await publish(settings, batch[:4_000])
    await wait_flushed(settings, live, 4_000, within=60)
    local = Stack(settings)
    pid = local.s3.pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    away, sent = loop.time(), 4_000
    # Events keep coming for the 30 s the object store is away; ingestion goes on regardless.
    while loop.time() - away < 30 or sent < 12_000:
        chunk = batch[sent : sent + 400]
        sent += await publish(settings, chunk) if chunk else 0
        await asyncio.sleep(0.5)  # paces the stream over the outage; nothing waits on this
        if sent >= 12_000 and loop.time() - away >= 30:
            break
    assert flush(live).get("last_error") is not None
    await wait_until(
        lambda: (live.health() or {}).get("lag") == 0, within=60, what="views caught up"
    )
    assert (flush(live).get("lag_records") or 0) > 0  # type: ignore[operator]
    local.up()
    await wait_flushed(settings, live, 12_000, within=120)
    await assert_s3_equals_kafka(settings, 12_000)
