"""The `views` table's changelog, read and written directly.

Reading the changelog rather than asking a worker gives every key, byte for byte, from any
machine, whether or not a worker holds the partition right now. Writing it directly lets a
batch's changes go out in a few produce requests (`BatchWriter`), and the dead letters with
them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from app.log.replay import kafka_bounds
from app.loop_thread import LoopThread
from app.record_batch import PlainBatch, plain_batches, seal
from app.settings import Settings
from app.views.wal import PartitionTxn
from tables.views import TABLE_NAME, Unit


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{TABLE_NAME}-changelog"


async def read_views(
    settings: Settings, consumer: AIOKafkaConsumer, partition: int
) -> dict[str, bytes] | None:
    """Partition `partition` of the views as of its last complete batch; None without a changelog."""
    tp = TopicPartition(changelog_topic(settings), partition)
    start, end = await kafka_bounds(consumer, tp)
    if end == 0 and tp.topic not in await consumer.topics():
        return None
    state: dict[str, bytes] = {}
    consumer.assign([tp])
    consumer.seek(tp, start)
    position = start
    while position < end:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=20_000)
        for m in fetched.get(tp, []):
            if m.offset >= end:
                break
            key = m.key.decode()
            if m.value is None:
                state.pop(key, None)
            else:
                state[key] = m.value
            position = m.offset + 1
        if not fetched and (consumer.highwater(tp) or 0) <= position:
            break
    return rolled_back(state, partition)


def rolled_back(state: dict[str, bytes], partition: int) -> dict[str, bytes]:
    """`state` without the batch a crash cut short, if any: what the next batch will see."""
    PartitionTxn(state).cursor(partition)  # the wal's own roll-back, on this copy
    return state


class BatchWriter:
    """Writes a batch's table changes to the changelog in a few produce requests, not one per key.

    Faust sends one record per table write, each through its own buffers and callbacks; at
    hundreds of writes per batch that, not the fold, bounded ingestion. Here a partition's
    changes go out as whole record batches, in order, and the call returns once all are acked.
    A unit of changes (one `write_batch` of the table, a partition's fold) that fits a batch
    goes in one, never cut: Kafka appends a batch whole or not at all, so the wal needs no
    undo record for it (`app.views.wal`).

    On Tansu (`last_alone`), each partition's last change travels alone in a batch of its
    own: Tansu answers ListOffsets "latest" with the last batch's base offset + 1
    (LOCAL-SERVICES.md), which is then the true end of the log, so table recovery reads every
    record. Apache Kafka answers the true end, and the lone batch would cost each write a
    second produce round trip (aiokafka sends a partition's next batch once the last is acked).

    On Apache Kafka the batches are compressed (`compression`, zstd): the changes are JSON,
    then about 1 KB a folded record with the wal's undo of every key a batch touched, and
    zstd made them a fifth of that. The broker's CPU fell by about half in two runs of three
    and the changelog step took about a quarter less time, though the ingest rate did not
    move: the worker's own CPU bounds it (bench.ingest, BENCHMARKS.md, 2026-12-06).

    Its producer runs on a thread and event loop of its own (`app.loop_thread`): on the
    worker's loop, which turns only between the partitions of a fold, a write took most of
    the next fold to go through its steps, and the fold then waited for it.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        max_request_size: int,
        ack_timeout: float = 60.0,
        *,
        last_alone: bool = False,
        compression: str | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.last_alone = last_alone
        self.compression = compression
        self.ack_timeout = ack_timeout
        self.topic = topic
        self.max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()  # used on the writer's loop only
        # The producer lives here, on a loop and thread of its own (`app.loop_thread`).
        self._io = LoopThread("changelog-writer")

    @property
    def whole_bytes(self) -> int:
        """A unit up to this size goes in one record batch, which Kafka appends whole; on
        Tansu a partition's last record goes alone, so no unit is promised whole."""
        return 0 if self.last_alone else self.max_request_size

    async def write(self, units: Sequence[Unit]) -> dict[int, int]:
        """Send each `(partition, [(key, value or None), ...])` in order, a unit that fits a
        batch (`whole_bytes`) in one; the last offset written per partition. The framing is
        done here; sealing, sending and the acks on the writer's own thread (`_send`)."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        starts: dict[int, list[int]] = defaultdict(list)
        for partition, changes in units:
            records = by_partition[partition]
            starts[partition].append(len(records))
            records += changes
        plain = [
            (partition, batch)
            for partition, records in by_partition.items()
            for batch in self._plain(records, starts[partition])
        ]
        return await self._io.run(self._send(plain))

    async def _send(self, plain: Sequence[tuple[int, PlainBatch]]) -> dict[int, int]:
        """On the writer's thread: seal each batch, send it, and wait for every ack.

        Sealing here keeps it off the event loop's thread too: zstd lets go of the GIL, so a
        write's 8 MB are compressed on another core while the loop goes on with the next
        fold. That took about 9 ms of the loop's thread off each fetch of 8,000 records, 3%
        of its time (BENCHMARKS.md, 2026-12-07)."""
        producer = await self._started()
        sent: list[tuple[int, int, asyncio.Future[Any]]] = []  # partition, records, ack
        for partition, batch in plain:
            sealed = seal(batch, self.compression)
            ack = await producer.send_batch(sealed, self.topic, partition=partition)
            sent.append((partition, sealed.record_count(), ack))
        await self._wait_acks([future for _, _, future in sent], "changelog")
        # Batches of a partition are acked in order, each with its first record's offset.
        return {partition: future.result().offset + count - 1 for partition, count, future in sent}

    async def publish(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send `(key, value)` records to `topic`, each to the partition a producer's default
        partitioner picks, in order, and return once all are acked.

        For what is sent while the agent folds (the dead letters, `Ingestor._write`, and
        the erasure reports, `Ingestor._fold`). A
        Faust `topic.send` yields to the event loop three times before it queues its record
        (mode's `stampede` around `App.maybe_start_producer`), and the loop comes back to
        the sender only when the fold pauses, between partitions: a fetch's 50-140 dead
        letters took the whole next fold to send, 0.2-0.8 s, and the changelog write
        waited behind them (bench.ingest, 2026-12-07). Here they are a record batch a
        partition (on Tansu the last alone, as for the changelog), sent from the writer's
        own thread (`_publish`), as the changelog is."""
        await self._io.run(self._publish(topic, records))

    async def _publish(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        producer = await self._started()
        partitions = sorted(await producer.partitions_for(topic))
        choose = DefaultPartitioner()
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[choose(key, partitions, partitions)].append((key, value))
        sent: list[asyncio.Future[Any]] = []
        for partition, group in by_partition.items():
            for batch in self._plain(group):
                sealed = seal(batch, self.compression)
                sent.append(await producer.send_batch(sealed, topic, partition=partition))
        await self._wait_acks(sent, topic)

    def _plain(
        self, records: Sequence[tuple[bytes | None, bytes | None]], units: Sequence[int] = ()
    ) -> list[PlainBatch]:
        """A partition's records as batches, in order, none cutting a unit that fits one; on
        Tansu the last record alone, and no unit promised whole (`whole_bytes`)."""
        groups = (records[:-1], records[-1:]) if self.last_alone else (records,)
        return [
            batch
            for group in groups
            for batch in plain_batches(
                [k for k, _ in group],
                [v for _, v in group],
                self.max_request_size,
                units=() if self.last_alone else units,
            )
        ]

    async def _wait_acks(self, futures: list[asyncio.Future[Any]], what: str) -> None:
        """Every ack, or the first failure: a batch the broker refused is not written."""
        if not futures:
            return
        _, pending = await asyncio.wait(futures, timeout=self.ack_timeout)
        if pending:
            # Not cancelled: aiokafka owns them. The caller's retry sends the records again,
            # which is harmless (same keys, same order), and the wait is no longer silent.
            raise TimeoutError(
                f"{len(pending)} of {len(futures)} {what} batches not acknowledged "
                f"within {self.ack_timeout:.0f} s"
            )
        for future in futures:
            future.result()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await self._io.run(producer.stop())
        self._io.close()
        # A lock waited on is bound to its loop: a writer used again gets a loop of its own.
        self._starting = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        """The producer, started once on the writer's loop, however many callers ask at once
        (a write and a publish can)."""
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap_servers,
                    acks="all",
                    linger_ms=0,
                    max_batch_size=self.max_request_size,
                    max_request_size=self.max_request_size,
                )
                await producer.start()
                self._producer = producer
            return self._producer
