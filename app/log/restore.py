"""Put a lost log back: write each partition's flushed records to the broker at their old offsets.

The local broker keeps topics in memory, so a restart loses them; the cold segments still hold
every flushed record. Written back in offset order to empty partitions, records get their old
offsets again, which is checked record by record. With Apache Kafka nothing is ever missing
and this finds nothing to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.domain.log_layout import next_offset
from app.log import epoch, segments
from app.log.replay import consumer_for, kafka_bounds, stop_consumer
from app.log.segment_store import SegmentStore, segment_store
from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import COLD, CONTRACT

log = logging.getLogger(__name__)


class RestoreError(RuntimeError):
    """The broker's log and the cold segments disagree in a way a restore cannot mend."""


@dataclass
class RestoreReport:
    records: dict[str, int] = field(default_factory=dict)  # per topic

    @property
    def total(self) -> int:
        return sum(self.records.values())


async def restore_log(settings: Settings, replication: int = 1) -> RestoreReport:
    """Write back every flushed record the broker is missing; a no-op when it has them all."""
    if settings.broker == "tansu":
        # Topics the restarted broker lost may hold a stale end offset (see recreate_empty).
        existing = await epoch.topics(settings)
        missing = [t for t in CONTRACT if t not in existing]
        if missing:
            await epoch.recreate_empty(settings, missing, settings.partitions)
    await ensure_topics(settings, replication)
    report = RestoreReport()
    consumer = consumer_for(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=16 * 1024 * 1024,
    )
    await consumer.start()
    await producer.start()
    try:
        async with segment_store(settings) as cold:
            for topic in COLD:
                await _check_partitions(cold, settings, topic)
                report.records[topic] = 0
                for partition in range(settings.partitions):
                    report.records[topic] += await _restore_partition(
                        cold, consumer, producer, topic, partition
                    )
    finally:
        await producer.stop()
        await stop_consumer(consumer)
    if report.total:
        log.warning("restored %d records from cold segments: %s", report.total, report.records)
    return report


async def _check_partitions(cold: SegmentStore, settings: Settings, topic: str) -> None:
    for partition in await cold.partitions(topic):
        if partition >= settings.partitions:
            raise RestoreError(
                f"cold segments hold {topic} partition={partition}, but "
                f"MODELVIEW_PARTITIONS={settings.partitions}: "
                "the log was written with more partitions; set MODELVIEW_PARTITIONS to match it"
            )


async def _restore_partition(
    cold: SegmentStore,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
) -> int:
    found = await cold.segments(topic, partition)
    if not found:
        return 0
    _, highwater = await kafka_bounds(consumer, TopicPartition(topic, partition))
    flushed = next_offset(found)
    if highwater >= flushed:
        return 0
    written, position = 0, highwater
    for segment in found:
        if segment.last < position:
            continue
        if segment.first > position:
            raise RestoreError(
                f"{topic}[{partition}]: the broker ends at offset {position} and the next cold "
                f"segment starts at {segment.first}; offsets {position}..{segment.first - 1} "
                "are in neither, so the log cannot be put back at its old offsets"
            )
        data = await cold.get(segment)
        records = segments.decode(topic, data).between(position)
        futures = [
            await producer.send(
                topic, key=r.key, value=r.value, partition=partition, timestamp_ms=r.timestamp_ms
            )
            for r in records
        ]
        for record, future in zip(records, futures, strict=True):
            metadata = await future
            if metadata.offset != record.offset:
                raise RestoreError(
                    f"{topic}[{partition}]: record {record.offset} came back at offset "
                    f"{metadata.offset}; something else is writing to this partition"
                )
        written += len(records)
        position = segment.last + 1
    return written
