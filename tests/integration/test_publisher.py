"""`KafkaPublisher.queue_keyed` on the real broker: where `send` would put each record, in the
order of the calls, though each call's batches go out in the background."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from app.client import BATCH_BYTES, KafkaPublisher, PublishError
from app.partitioning import partitions
from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import PREDICTIONS
from tests.coldlog import kafka_records

pytestmark = pytest.mark.integration


async def queue(publisher: KafkaPublisher, records: list[tuple[bytes, bytes]]) -> Any:
    return await publisher.queue_keyed(
        PREDICTIONS, [k for k, _ in records], [v for _, v in records]
    )


async def test_queued_calls_land_in_order_on_the_keys_partitions(stack: Settings) -> None:
    await ensure_topics(stack)
    value = b"x" * 400
    calls = [
        # Each call spans more than one record batch a partition: keys repeat across calls.
        [(f"k{i % 37}".encode(), b"%d:%d:" % (call, i) + value) for i in range(12_000)]
        for call in range(3)
    ]
    assert sum(len(k) + len(v) for k, v in calls[0]) > 4 * BATCH_BYTES
    async with KafkaPublisher(stack.bootstrap_servers, validate=False) as publisher:
        # None awaited before the next is queued, as batch scoring does.
        queued = [await queue(publisher, records) for records in calls]
        await asyncio.wait_for(asyncio.gather(*queued), timeout=60)

        # A record larger than the topic takes is said, never dropped silently: refused
        # when queued, or failed at its ack. Tansu takes records of any size.
        huge = [(b"huge", b"y" * (2 * 1024 * 1024))]
        if stack.broker == "tansu":
            await asyncio.wait_for(await queue(publisher, huge), timeout=60)
            calls.append(huge)
        else:
            with pytest.raises((PublishError, MessageSizeTooLargeError)):
                await asyncio.wait_for(await queue(publisher, huge), timeout=60)
        # ... and the calls after it still go out.
        calls.append([(b"k0", b"after the refused one")])
        await asyncio.wait_for(await queue(publisher, calls[-1]), timeout=60)

    logged = await kafka_records(stack, [PREDICTIONS])
    count = stack.partitions
    assert len(logged) == sum(map(len, calls))
    by_key: dict[bytes, list[bytes]] = {}
    for (_, partition, _), (key, body, _) in sorted(logged.items()):
        assert key is not None and body is not None
        assert partition == partitions([key], count)[0], key
        by_key.setdefault(key, []).append(body)
    for key, bodies in by_key.items():
        wanted = [v for records in calls for k, v in records if k == key]
        assert bodies == wanted, key  # one key's records in the order they were queued
