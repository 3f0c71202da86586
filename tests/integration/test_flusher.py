"""The flusher on the real stack, in-process: what it asks S3 for before it flushes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiokafka import AIOKafkaProducer

from app.log.flusher import Flusher
from app.log.segment_store import segment_store
from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import PREDICTIONS
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


async def send(settings: Settings, partition: int, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for i in range(count):
            await producer.send(PREDICTIONS, b"v%d" % i, key=b"k%d" % i, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_partition_s_s3_progress_is_read_once_its_log_holds_a_record(
    stack: Settings,
) -> None:
    settings = stack.with_(flush_seconds=0.2)
    await ensure_topics(settings)
    await send(settings, 0, 5)
    owned = [(PREDICTIONS, 0), (PREDICTIONS, 1)]
    flusher = Flusher(settings, owned=lambda: owned, topics=[PREDICTIONS])
    running = asyncio.ensure_future(flusher.run())
    try:
        await wait_until(
            lambda: flusher.status()["records_written"] == 5, within=30, what="partition 0 flushed"
        )
        # Partition 1's log is empty: nothing to flush, and no S3 listing for it yet.
        assert flusher.status()["partitions_listed"] == 1
        await send(settings, 1, 3)
        await wait_until(
            lambda: flusher.status()["records_written"] == 8, within=30, what="partition 1 flushed"
        )
        assert flusher.status()["partitions_listed"] == 2
    finally:
        await flusher.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    async with segment_store(settings) as cold:
        assert [s.first for s in await cold.segments(PREDICTIONS, 1)] == [0]
        assert sum(s.last - s.first + 1 for s in await cold.segments(PREDICTIONS, 0)) == 5
