"""Read the log two ways, independently of the code under test: raw Kafka and raw S3 objects."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.domain.log_layout import LogRecord, Segment
from app.log import segments
from app.log.segment_store import segment_store
from app.s3 import s3_client
from app.settings import Settings
from app.topics import LOGGED
from app.views.compat import all_metadata

# (topic, partition, offset) -> (key, value, timestamp ms)
Records = dict[tuple[str, int, int], tuple[bytes | None, bytes | None, int]]


async def publish(settings: Settings, items: Iterable[tuple[str, bytes, bytes]]) -> int:
    """Send (topic, key, value) records, batched, and wait for all of them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(t, key=k, value=v) for t, k, v in items]
        for future in futures:
            await future
    finally:
        await producer.stop()
    return len(futures)


async def kafka_records(settings: Settings, topics: Sequence[str]) -> Records:
    """Everything the broker holds for `topics`, up to the high-water marks seen by a fetch."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: Records = {}
    try:
        cluster = await all_metadata(consumer)
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(cluster.partitions_for_topic(t) or ())
        ]
        if not tps:
            return records
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done: set[TopicPartition] = set()
        while len(done) < len(tps):
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for messages in batch.values():
                for m in messages:
                    records[(m.topic, m.partition, m.offset)] = (m.key, m.value, m.timestamp)
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
    finally:
        await consumer.stop()
    return records


async def s3_rows(
    settings: Settings, prefix: str = "log/"
) -> tuple[Records, Counter[tuple[str, int, int]]]:
    """Every row of every segment object, and how many times each (topic, partition, offset) occurs."""
    rows: Records = {}
    seen: Counter[tuple[str, int, int]] = Counter()
    async with s3_client(settings) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=settings.s3_bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                topic = item["Key"].split("/")[1]
                response = await client.get_object(Bucket=settings.s3_bucket, Key=item["Key"])
                async with response["Body"] as body:
                    table = pq.read_table(io.BytesIO(await body.read()))
                data = table.to_pydict()
                stamps = table.column("timestamp").cast(pa.int64()).to_pylist()
                for p, o, k, v, t in zip(
                    data["partition"],
                    data["offset"],
                    data["key"],
                    data["value"],
                    stamps,
                    strict=True,
                ):
                    seen[(topic, p, o)] += 1
                    rows[(topic, p, o)] = (k, v, t)
    return rows, seen


async def flush_head(settings: Settings, logged: Records, share: float) -> Records:
    """Write the first `share` of each partition to S3 in uneven segments; returns what was written."""
    written: Records = {}
    async with segment_store(settings) as cold:
        for topic in LOGGED:
            for p in range(settings.partitions):
                offsets = sorted(o for (t, q, o) in logged if (t, q) == (topic, p))
                head = offsets[: int(len(offsets) * share)]
                for start in range(0, len(head), 97):
                    chunk = head[start : start + 97]
                    records = [
                        LogRecord(topic, p, o, logged[(topic, p, o)][2], *logged[(topic, p, o)][:2])
                        for o in chunk
                    ]
                    segment = Segment(chunk[0], chunk[-1], topic, p)
                    await cold.put(segment, segments.encode(records))
                    written.update({(topic, p, o): logged[(topic, p, o)] for o in chunk})
    return written
