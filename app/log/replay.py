"""The replay reader: one topic-partition's log, cold segments first, then Kafka, exactly once.

Whether Kafka still holds the old offsets, dropped them by retention, or lost everything, the
reader returns each offset once and in order, or raises `LogGap` naming what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.domain.log_layout import LogGap, LogRecord, next_offset, plan_replay
from app.log import segments
from app.log.segment_store import SegmentStore, segment_store
from app.settings import Settings
from app.topics import LOGGED
from app.views.compat import all_metadata


class BrokerUnanswered(RuntimeError):
    """The broker answered no fetch of a partition in time: said, instead of waiting for ever."""


async def kafka_bounds(
    consumer: AIOKafkaConsumer, tp: TopicPartition, within: float = 60.0
) -> tuple[int, int]:
    """The broker's log start and high-water mark for `tp` (0, 0 if it has no such partition).

    The high-water mark comes from a fetch: the local broker's ListOffsets(latest) is wrong
    after batched writes. A fetch that never answers raises `BrokerUnanswered` after `within`.
    """
    # The consumer's own metadata covers only the topics it was assigned: ask for all of it.
    cluster = await all_metadata(consumer)
    partitions = cluster.partitions_for_topic(tp.topic)
    if not partitions or tp.partition not in partitions:
        return 0, 0
    consumer.assign([tp])
    start = (await consumer.beginning_offsets([tp]))[tp]
    # Exact on Kafka; on the local broker a lower bound that is above `start` whenever the
    # partition holds a record past it. Equal means empty: no fetch to wait on.
    lower = (await consumer.end_offsets([tp]))[tp]
    if lower <= start:
        return start, start
    consumer.seek(tp, start)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while consumer.highwater(tp) is None:
        if loop.time() >= deadline:
            raise BrokerUnanswered(
                f"{tp.topic}[{tp.partition}]: no fetch answered within {within:g}s "
                f"(offsets {start}..{lower} listed)"
            )
        await consumer.getmany(tp, timeout_ms=200, max_records=1)
    highwater: int = consumer.highwater(tp)
    return start, max(highwater, lower)


async def read_partition(
    cold: SegmentStore,
    consumer: AIOKafkaConsumer,
    topic: str,
    partition: int,
    start: int = 0,
    stop: int | None = None,
) -> AsyncIterator[Sequence[LogRecord]]:
    """Batches of records with `start <= offset < stop` (default: everything logged so far)."""
    found = await cold.segments(topic, partition)
    tp = TopicPartition(topic, partition)
    kafka_start, kafka_end = await kafka_bounds(consumer, tp)
    end = max(kafka_end, next_offset(found)) if stop is None else stop
    plan = plan_replay(found, start, end, kafka_start, kafka_end)
    position = start
    for segment in plan.segments:
        data = await cold.get(segment)
        records = segments.decode(topic, data).between(position, plan.kafka_from)
        if records:
            position = records[-1].offset + 1
            yield records
    if plan.kafka_from >= plan.stop:
        return
    consumer.assign([tp])
    consumer.seek(tp, plan.kafka_from)
    while position < plan.stop:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
        batch: Sequence[LogRecord] = [
            LogRecord(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value)
            for m in fetched.get(tp, [])
            if position <= m.offset < plan.stop
        ]
        if batch:
            position = batch[-1].offset + 1
            yield batch
        elif not fetched and (consumer.highwater(tp) or 0) <= position:
            raise LogGap(
                f"{topic}[{partition}]: Kafka ends at {position}, short of {plan.stop}; "
                "the broker lost records while they were being read"
            )


async def log_end(settings: Settings, topics: Sequence[str] = LOGGED) -> dict[str, dict[int, int]]:
    """Where the log (cold and hot) ends now, per topic (the views' by default) and partition."""
    out: dict[str, dict[int, int]] = {}
    consumer = consumer_for(settings)
    await consumer.start()
    try:
        async with segment_store(settings) as cold:
            for topic in topics:
                out[topic] = {}
                for p in range(settings.partitions):
                    found = await cold.segments(topic, p)
                    _, end = await kafka_bounds(consumer, TopicPartition(topic, p))
                    out[topic][p] = max(end, next_offset(found))
    finally:
        await stop_consumer(consumer)
    return out


def hot_ends(
    settings: Settings,
) -> Callable[[Collection[tuple[str, int]]], Awaitable[dict[tuple[str, int], int]]]:
    """The broker's high-water marks of (topic, partition)s, as `kafka_bounds` finds them:
    exact on both brokers, where the local broker's ListOffsets answer is short."""

    async def ends(tps: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        consumer = consumer_for(settings)
        await consumer.start()
        try:
            found = {}
            for topic, partition in tps:
                _, end = await kafka_bounds(consumer, TopicPartition(topic, partition), 30.0)
                found[topic, partition] = end
            return found
        finally:
            await stop_consumer(consumer)

    return ends


def consumer_for(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """`consumer.stop()`, minus an aiokafka 0.14 wart: without a group, stopping a consumer
    whose internal offset task never got to run raises CancelledError. Ours is re-raised."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
