"""The flusher: copies each owned topic-partition's records to S3 segments, beside ingestion.

It reads Kafka with its own consumer, from the first offset not yet in S3, so it never
depends on where ingestion has committed: ingestion keeps going while S3 is away, and the
flusher catches up when it returns. Progress is the segment keys themselves: a restarted
flusher lists them and goes on from the last one, so nothing is written twice and a crash
between a put and any bookkeeping cannot lose or repeat a record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.domain.log_layout import Segment, next_offset
from app.log import segments
from app.log.replay import stop_consumer
from app.log.segment_store import SegmentStore, segment_store
from app.settings import Settings

log = logging.getLogger(__name__)

TP = tuple[str, int]
# What this worker owns right now, e.g. Faust's active assignment.
Owned = Callable[[], Iterable[TP]]
MAX_BACKOFF = 10.0


@dataclass
class _Partition:
    topic: str
    partition: int
    known: bool = False  # the S3 progress has been listed
    next_offset: int = 0  # first offset not in S3
    last_key: str = ""
    highwater: int = 0
    buffer: segments.Records = field(init=False)  # read, not yet in S3
    since: float | None = None  # when the oldest buffered record was read
    failures: int = 0
    retry_at: float = 0.0

    def __post_init__(self) -> None:
        self.buffer = segments.Records(self.topic, self.partition)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    @property
    def last_seen(self) -> int:
        return self.buffer.offsets[-1] if self.buffer else self.next_offset - 1

    def learned(self, found: list[Segment]) -> None:
        """Its segments in S3 (`found`, in offset order): flushing goes on after the last."""
        self.next_offset = next_offset(found)
        self.last_key = found[-1].key if found else ""
        self.known, self.failures = True, 0

    def backoff(self, now: float) -> None:
        self.failures += 1
        self.retry_at = now + min(MAX_BACKOFF, 0.25 * 2**self.failures)


@dataclass
class FlushStats:
    segments: int = 0
    records: int = 0
    bytes: int = 0
    failures: int = 0
    last_error: str | None = None


class Flusher:
    def __init__(
        self,
        settings: Settings,
        owned: Owned,
        topics: Iterable[str],
        redact: Callable[[segments.Records], segments.Records] | None = None,
    ) -> None:
        self.settings = settings
        self.redact = redact  # what erasures took away, taken out before the write
        self.owned = owned
        self.topics = frozenset(topics)
        self.parts: dict[TP, _Partition] = {}
        self.stats = FlushStats()
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        ages = [now - p.since for p in self.parts.values() if p.since is not None]
        return {
            "partitions": len(self.parts),
            "lag_records": sum(max(0, p.highwater - p.next_offset) for p in self.parts.values()),
            "oldest_unflushed_seconds": round(max(ages, default=0.0), 3),
            "buffered_records": sum(len(p.buffer) for p in self.parts.values()),
            "segments_written": self.stats.segments,
            "records_written": self.stats.records,
            "bytes_written": self.stats.bytes,
            "failures": self.stats.failures,
            "last_error": self.stats.last_error,
        }

    def flushed(self) -> dict[TP, int]:
        """Per partition whose progress is known: the first offset not yet in S3."""
        return {tp: p.next_offset for tp, p in self.parts.items() if p.known}

    def lag(self) -> int:
        return int(self.status()["lag_records"])

    async def run(self) -> None:
        """Flush until `stop()`; then flush what is left, up to the high-water mark, and return."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._running = True
        try:
            await consumer.start()
            async with segment_store(self.settings) as cold:
                while not self._stopping.is_set():
                    await self._guarded_step(consumer, cold, final=False)
                await self._final(consumer, cold)
        finally:
            await stop_consumer(consumer)
            self._done.set()

    async def stop(self, within: float = 15.0) -> None:
        self._stopping.set()
        if not self._running:
            return
        try:
            await asyncio.wait_for(self._done.wait(), within)
        except TimeoutError:
            log.warning("flusher did not finish within %.0f s: %s", within, self.status())

    async def _final(self, consumer: AIOKafkaConsumer, cold: SegmentStore) -> None:
        ends = await self._log_ends(consumer)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            await self._guarded_step(consumer, cold, final=True)
            if all(
                p.known and not p.buffer and p.next_offset >= max(p.highwater, ends.get(p.tp, 0))
                for p in self.parts.values()
            ):
                return

    async def _log_ends(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Where the known partitions' logs end, if the broker answers within 5 s. A step's
        high-water marks come with the records `getmany` returns, which may have been
        fetched before the last records were written: a stop that trusted them left those
        out of S3 (test_recovery in CI, 2026-12-07: 634 and 645 of 646 restored after a
        clean stop, once the ingest stopped waiting for its changelog and stops came
        sooner after the last record)."""
        tps = [p.tp for p in self.parts.values() if p.known]
        if not tps:
            return {}
        try:
            return dict(await asyncio.wait_for(consumer.end_offsets(tps), 5.0))
        except Exception as exc:  # the broker away: the last fetch's marks are all there is
            log.warning("flusher could not read the log ends for its last flush: %s", exc)
            return {}

    async def _guarded_step(
        self, consumer: AIOKafkaConsumer, cold: SegmentStore, final: bool
    ) -> None:
        try:
            await self._step(consumer, cold, final)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a flusher that dies silently would be worse than a noisy one
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("flusher step failed; retrying")
            await asyncio.sleep(1.0)

    async def _step(self, consumer: AIOKafkaConsumer, cold: SegmentStore, final: bool) -> None:
        await self._follow_assignment(consumer, cold)
        if not consumer.assignment():
            await asyncio.sleep(0.2)
            return
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        now = time.monotonic()
        for tp, messages in batches.items():
            part = self.parts.get((tp.topic, tp.partition))
            if part is None:
                continue
            last_seen, append = part.last_seen, part.buffer.append
            for m in messages:
                if m.offset > last_seen:
                    append(m.offset, m.timestamp, m.key, m.value)
                    last_seen = m.offset
            if part.buffer and part.since is None:
                part.since = now
        limit = self.settings.flush_records
        for part in self.parts.values():
            if not part.known:
                continue
            highwater = consumer.highwater(part.tp)
            if highwater is not None:
                part.highwater = highwater
            due = part.buffer and (
                final
                or len(part.buffer) >= limit
                or now - (part.since or now) >= self.settings.flush_seconds
            )
            if due and now >= part.retry_at:
                while part.buffer and await self._flush(cold, part, limit):
                    if len(part.buffer) < limit and not final:
                        break
            # Bounded memory: while S3 is away, leave the records in Kafka.
            if len(part.buffer) >= limit:
                consumer.pause(part.tp)
            else:
                consumer.resume(part.tp)

    async def _follow_assignment(self, consumer: AIOKafkaConsumer, cold: SegmentStore) -> None:
        owned = {tp for tp in self.owned() if tp[0] in self.topics}
        for tp in set(self.parts) - owned:
            del self.parts[tp]
        for tp in owned - set(self.parts):
            self.parts[tp] = _Partition(*tp)
        await self._learn(cold, time.monotonic())
        wanted = {p.tp for p in self.parts.values() if p.known}
        if wanted != consumer.assignment():
            new = wanted - consumer.assignment()
            consumer.assign(list(wanted))
            for tp in new:
                part = self.parts[(tp.topic, tp.partition)]
                consumer.seek(tp, part.next_offset)

    async def _learn(self, cold: SegmentStore, now: float) -> None:
        """Learn where each newly owned partition's segments end.

        A topic's partitions with no segment at all are known from one listing of the
        topic's folders, not one listing each: a worker given 6 topics of 8 partitions made
        48 S3 calls before flushing anything, and on a fresh stack they were 7% of its main
        thread's busy samples in the ingestion benchmark (py-spy, 2026-12-07); the topics
        most deployments rarely write (erasures, model events) have no segments for long.
        The rest are listed one by one, for their last segment."""
        due: dict[str, list[_Partition]] = {}
        for part in self.parts.values():
            if not part.known and now >= part.retry_at:
                due.setdefault(part.topic, []).append(part)
        for topic, parts in due.items():
            try:
                with_segments = set(await cold.partitions(topic)) if len(parts) > 1 else None
            except Exception as exc:
                for part in parts:
                    self._failed(part, now, exc, "listing partitions")
                continue
            for part in parts:
                if with_segments is not None and part.partition not in with_segments:
                    part.learned([])
                else:
                    await self._learn_progress(cold, part, now)

    async def _learn_progress(self, cold: SegmentStore, part: _Partition, now: float) -> None:
        try:
            found = await cold.segments(part.topic, part.partition)
        except Exception as exc:
            self._failed(part, now, exc, "listing segments")
            return
        part.learned(found)

    async def _flush(self, cold: SegmentStore, part: _Partition, limit: int) -> bool:
        """Write the oldest buffered records as one segment; False if S3 said no."""
        now = time.monotonic()
        try:
            # Another worker may have flushed this partition just before a rebalance gave it to us.
            newer = await cold.segments(part.topic, part.partition, after=part.last_key)
            if newer:
                self._skip_to(part, newer)
                if not part.buffer:
                    return True
            records = part.buffer[:limit]
            segment = Segment(records.offsets[0], records.offsets[-1], part.topic, part.partition)
            written = self.redact(records) if self.redact is not None else records
            data = await asyncio.to_thread(segments.encode, written)
            await cold.put(segment, data)
        except Exception as exc:
            self._failed(part, now, exc, "writing a segment")
            return False
        part.buffer.drop(len(records))
        part.next_offset, part.last_key = segment.last + 1, segment.key
        part.since = time.monotonic() if part.buffer else None
        part.failures = 0
        self.stats.segments += 1
        self.stats.records += len(records)
        self.stats.bytes += len(data)
        return True

    def _skip_to(self, part: _Partition, newer: list[Segment]) -> None:
        last = newer[-1]
        log.warning("segments up to %s were flushed by another worker; skipping past", last.key)
        part.buffer = part.buffer.between(last.last + 1)
        part.next_offset = max(part.next_offset, last.last + 1)
        part.last_key = last.key

    def _failed(self, part: _Partition, now: float, exc: Exception, doing: str) -> None:
        part.backoff(now)
        self.stats.failures += 1
        self.stats.last_error = (
            f"{doing} for {part.topic}[{part.partition}]: {type(exc).__name__}: {exc}"
        )
        if part.failures in (1, 5) or part.failures % 50 == 0:
            log.warning("flusher: %s (attempt %d)", self.stats.last_error, part.failures)
