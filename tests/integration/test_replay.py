"""The replay reader and the restore on the real broker and object store, without a worker."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.log.replay import consumer_for, read_partition
from app.log.restore import restore_log
from app.log.segment_store import segment_store
from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import LOGGED, PREDICTIONS, TAGS
from tests.coldlog import Records, flush_head, kafka_records, publish

pytestmark = pytest.mark.integration


async def replay_all(settings: Settings) -> Records:
    out: Records = {}
    consumer = consumer_for(settings)
    await consumer.start()
    try:
        async with segment_store(settings) as cold:
            for topic in LOGGED:
                for p in range(settings.partitions):
                    last = -1
                    async for batch in read_partition(cold, consumer, topic, p):
                        for r in batch:
                            assert r.offset > last, "out of order or repeated"
                            last = r.offset
                            out[(r.topic, r.partition, r.offset)] = (r.key, r.value, r.timestamp_ms)
    finally:
        await consumer.stop()
    return out


async def test_replay_stitches_segments_to_kafka_and_restore_puts_them_back(
    stack: Settings,
) -> None:
    await ensure_topics(stack)
    sent = await publish(
        stack, [(PREDICTIONS if i % 3 else TAGS, b"k%d" % i, b"v%d" % i) for i in range(6_000)]
    )
    logged = await kafka_records(stack, LOGGED)
    assert len(logged) == sent

    # Kafka holds everything, S3 the first 60%: each record once, in order, S3 then Kafka.
    flushed = await flush_head(stack, logged, 0.6)
    assert 0 < len(flushed) < len(logged)
    assert await replay_all(stack) == logged

    # Kafka loses everything (the local broker's restart): replay gives exactly what S3 holds.
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(list(LOGGED))
    finally:
        await admin.close()
    await ensure_topics(stack)
    assert await kafka_records(stack, LOGGED) == {}
    assert await replay_all(stack) == flushed

    # Restore writes them back at their old offsets; a second restore finds nothing to do.
    report = await restore_log(stack)
    assert report.total == len(flushed)
    assert await kafka_records(stack, LOGGED) == flushed
    assert (await restore_log(stack)).total == 0
