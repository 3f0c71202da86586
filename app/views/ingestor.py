"""The ingest step around the pure fold: group a batch by partition, fold, write, dead-letter."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

from app.domain import erasure
from app.domain.batch import SourceRecord, fold_batch
from app.domain.delivery import holes, in_log_order, source_records
from app.log.replay import consumer_for, read_partition, stop_consumer
from app.log.segment_store import segment_store
from app.settings import Settings
from app.views import viewcodec
from app.views.compat import writing_for
from app.views.deadletters import encode_dead_letter
from app.views.wal import PartitionTxn, Reads, Store, keys_under

GAP_CHUNK = 5_000
log = logging.getLogger(__name__)

# Sends dead letters (key, value), in order, and waits until the broker has them all.
SendDeadLetters = Callable[[Sequence[tuple[bytes | None, bytes]]], Awaitable[None]]
# Sends one record to the erasures topic (key, value) and waits until the broker has it.
SendErasure = Callable[[bytes, bytes], Awaitable[None]]
# Waits until every table write so far is in the changelog.
ChangelogAcks = Callable[[], Awaitable[None]]
# Reads a topic-partition's records with start <= offset < stop from the log (S3, then Kafka).
Backfill = Callable[[str, int, int, int], Awaitable[list[SourceRecord]]]


async def _no_changelog() -> None:
    return None


class DurableCursor:
    """Per source (topic, partition), the next offset the views need once what they hold is
    in the changelog: the only offset the consumer group may commit for the views' topics.

    The Ingestor advances it, after the changelog acks; the committing consumer reads it
    (`app.views.compat.CommittingConsumer`).
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}

    def advance(self, topic: str, partition: int, next_offset: int) -> None:
        self._next[(topic, partition)] = next_offset

    def committable(self, topic: str, partition: int) -> int | None:
        """The offset to commit, or None while nothing of this partition is folded here."""
        return self._next.get((topic, partition))


class Handover:
    """What was handed to the ingest agent and never folded: the records of a fetch that
    Faust dropped on the way.

    The agent's stream drops a fetch event whose generation is not the group's at the
    moment it is taken, or taken while the flow is stopped, and a rebalance clears the
    agent's queue. Faust's seek back to the committed offsets brings such records again
    when it comes after the drop; when the drop comes after the seek (the fetch made past
    it, the event stamped or taken in between), nothing does. A later record of the
    partition shows the hole, and `Ingestor._missed` folds it from the log; after the last
    records of a partition nothing does, and the views stayed short of the log for good
    (the broker-away capture test, in CI, 2026-12-06). `stalled` names those partitions.
    """

    def __init__(self) -> None:
        self._handed: dict[tuple[str, int], int] = {}
        self._seen: dict[tuple[str, int], int | None] = {}

    def handed(self, topic: str, partition: int, next_offset: int) -> None:
        """Records of `topic`[`partition`] below `next_offset` went to the agent."""
        key = (topic, partition)
        self._handed[key] = max(next_offset, self._handed.get(key, next_offset))

    def stalled(
        self, owned: Collection[tuple[str, int]], durable: DurableCursor
    ) -> dict[tuple[str, int], int]:
        """Per owned (topic, partition) whose views are short of what was handed over and
        did not move since the last call, the offset they must reach."""
        out: dict[tuple[str, int], int] = {}
        for key in owned:
            end = self._handed.get(key)
            if end is None:
                continue
            at = durable.committable(*key)
            if (at is None or at < end) and key in self._seen and self._seen[key] == at:
                out[key] = end
            self._seen[key] = at
        return out


class Ingestor:
    """Owns a batch's journey from delivery to committed offset, so records fold exactly once
    under at-least-once delivery, kills and rebalances. For each batch the agent hands over:

    1. Group its records by source partition, in log order (`process`).
    2. Read the partition's cursor from its wal, first rolling back a batch a crash cut
       short (`app.views.wal`).
    3. Fill any hole between that cursor and the batch from the log (`_missed`).
    4. Fold the records past the cursor, purely (`app.domain.batch.fold_batch`).
    5. Queue the dead letters.
    6. Write the batch to the table under the wal: undo record, writes, new cursor. The
       changes are queued for the changelog (`tables.views.ViewsTable`).
    7. In the background, while the next batch folds (`_write_behind`): send the queued
       dead letters, then every queued change to the changelog (`changelog_acks`), each
       waited for until acked, retried until they are; one such write at a time, in order.
       The dead letters go first: a worker restored from a changelog past their records
       would not meet them again.
    8. Advance the durable cursor past the batches it wrote (`DurableCursor`).
    9. The consumer group commits the durable cursor, and nothing else, for these topics
       (`CommittingConsumer`, on Faust's commit timer).

    A crash between any two steps leaves the views either before or after the batch, and
    the group's offset at or behind them; on restart step 2 and 3 bring both together.
    `drain` runs step 7 for a stop, once the streams no longer deliver; a rebalance waits
    for the write in flight (`before_rebalance`).
    """

    def __init__(
        self,
        store: Store,
        send_dead_letters: SendDeadLetters,
        max_event_bytes: int,
        changelog_acks: ChangelogAcks = _no_changelog,
        backfill: Backfill | None = None,
        send_erasure: SendErasure | None = None,
    ) -> None:
        self.store = store
        self.send_erasure = send_erasure
        self.changelog_acks = changelog_acks
        self.backfill = backfill
        self.durable = DurableCursor()
        self.txn = PartitionTxn(store)
        self.send_dead_letters = send_dead_letters
        self.max_event_bytes = max_event_bytes
        self.counts: Counter[str] = Counter()
        self.letters: list[tuple[bytes | None, bytes]] = []  # dead letters not yet acked
        # Cursors of folds whose changes are not yet acked, and the write in flight.
        self.unacked: list[dict[int, dict[str, int]]] = []
        self.writing: asyncio.Future[None] | None = None
        self.backoff = 0.5  # seconds before a failed changelog write's first retry
        self.stopping = False
        # When (epoch seconds) the first fetch with records began to fold, and the last
        # one was folded; and the CPU seconds the worker's main thread had used by then.
        self.first_fold: float | None = None
        self.last_fold: float | None = None
        self.last_fold_cpu: float | None = None

    async def stop_retrying(self) -> None:
        """From now a failed batch is left to the next start, not retried: a worker that is
        stopping must not wait on a broker that may never answer (one that lost its log
        refuses the changelog's topic for good). Nothing is lost: the batch's records are
        not durable, so not committed, and its half-written state is rolled back by its wal
        or, with the stop then not clean, discarded."""
        self.stopping = True

    async def drain(self) -> None:
        """Step 7 for whatever is still queued: a stop is clean only after it."""
        try:
            await self.settle()
        except Exception as exc:  # its changes are still queued: the write below sends them
            log.warning("a changelog write failed (%s); writing again", exc)
        await self._write_behind()
        await self.settle()

    async def process_until_done(
        self, records: Sequence[SourceRecord], backoff: float = 0.5
    ) -> None:
        """`process`, retried until it succeeds: a batch is never skipped.

        If an agent raised, Faust would restart it and move on, and these records could be
        acknowledged without being folded. A retry is safe: a partition's half-written batch
        is rolled back by its wal, finished partitions skip by their cursor; a dead letter
        may be sent twice.
        """
        attempt = 0
        while True:
            try:
                await self.process(records)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.stopping:
                    # Returning lets the stream ack the event, so Faust's stop need not
                    # wait on it; the group's commit stays at the durable cursor.
                    log.warning(
                        "ingest batch failed while stopping (%s); left to the next start", exc
                    )
                    return
                attempt += 1
                self.counts.update(retries=1)
                delay = _retry_delay(backoff, attempt)
                log.warning("ingest batch failed (%s); retry %d in %.1f s", exc, attempt, delay)
                await asyncio.sleep(delay)

    async def process(
        self,
        records: Sequence[SourceRecord],
        ends: Mapping[tuple[str, int], int] | None = None,
    ) -> None:
        """Fold `records`, and, where `ends` names a (topic, partition), everything the views
        lack below its offset, read from the log (what `Handover.stalled` found)."""
        if records and self.first_fold is None:
            self.first_fold = time.time()
        by_partition: dict[int, list[SourceRecord]] = defaultdict(list)
        for record in records:
            by_partition[record.partition].append(record)
        reach: dict[int, dict[str, int]] = defaultdict(dict)
        for (topic, partition), end in (ends or {}).items():
            reach[partition][topic] = end
            by_partition.setdefault(partition, [])
        cursors: dict[int, dict[str, int]] = {}
        with collector_paused():
            for partition, group in by_partition.items():
                topic = group[-1].topic if group else next(iter(reach[partition]))
                # Faust files table writes under the current event's partition: this one.
                with writing_for(topic, partition):
                    cursors[partition] = await self.process_partition(
                        partition, group, reach.get(partition)
                    )
                # The loop's turn between partitions, as within them (`_fold`).
                await asyncio.sleep(0)
        self.unacked.append(cursors)
        if records:
            self.last_fold, self.last_fold_cpu = time.time(), time.thread_time()
        await self._write_behind()

    async def _write_behind(self) -> None:
        """Settle the changelog write in flight, then start the next, of everything folded
        since: the next fetch folds while the broker takes it."""
        await self.settle()
        self.writing = asyncio.ensure_future(self._write(self.unacked))
        self.unacked = []
        await asyncio.sleep(0)  # it starts sending now, not after the next fold

    async def before_rebalance(self, within: float = 30.0) -> None:
        """Wait, up to `within` seconds, for the changelog write in flight: its partitions'
        next owner restores their views from the changelog, and a write that landed after
        that would mix two workers' states in it."""
        writing = self.writing
        if writing is None:
            return
        done, _ = await asyncio.wait([writing], timeout=within)
        if not done:
            log.warning("the changelog write in flight did not finish within %.0f s", within)

    async def settle(self) -> None:
        """Wait for the changelog write in flight; it fails only once the worker is stopping
        (`_write`), and its changes stay queued for the next."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing

    async def _write(self, cursors: list[dict[int, dict[str, int]]]) -> None:
        """Send the dead letters and the changelog, retried until acked, then report the
        folds' cursors durable: the group commits what is reported durable here, and a
        crash must not lose what it committed. A stopping worker does not retry: what
        failed stays queued for `drain`, and is not durable."""
        attempt = 0
        while True:
            try:
                await self._send_letters()
                await self.changelog_acks()
                break
            except Exception as exc:
                if self.stopping:
                    self.unacked[:0] = cursors
                    raise
                attempt += 1
                self.counts.update(retries=1)
                delay = _retry_delay(self.backoff, attempt)
                log.warning("changelog write failed (%s); retry %d in %.1f s", exc, attempt, delay)
                await asyncio.sleep(delay)
        for batch in cursors:
            for partition, cursor in batch.items():
                for topic, offset in cursor.items():
                    self.durable.advance(topic, partition, offset + 1)

    async def process_partition(
        self,
        partition: int,
        records: Sequence[SourceRecord],
        ends: Mapping[str, int] | None = None,
    ) -> dict[str, int]:
        """Fold a partition's records, and up to `ends` (per topic, an offset the views must
        reach) from the log; returns the views' cursor after them."""
        # In log order: after a start Faust can hand over prefetched records before the ones
        # it fetches again from the committed offset (faust-streaming#221), and a fold in
        # delivery order would skip the lower offsets as already applied.
        records = in_log_order(records)
        # Read (and, after a crash, rolled back) once; each fold hands on the cursor it wrote.
        cursor = self.txn.cursor(partition)
        missed = await self._missed(partition, cursor, records, ends or {})
        if missed:
            records = in_log_order([*missed, *records])
        for start in range(0, len(records), GAP_CHUNK):
            cursor = await self._fold(partition, cursor, records[start : start + GAP_CHUNK])
        return cursor

    async def _missed(
        self,
        partition: int,
        cursor: dict[str, int],
        records: Sequence[SourceRecord],
        ends: Mapping[str, int],
    ) -> list[SourceRecord]:
        """The records past the views' cursor that delivery skipped, read from the log:
        those below the batch's last record of a topic, and those below its `ends`.

        Faust's delivery is not to be trusted to be complete. Fresh views (after the broker
        lost its log) meet offsets committed after the restart. And at every start Faust
        0.15.3 lets records through before it seeks to the committed offsets
        (faust-streaming#216), resets its read offset under the records already fetched, and
        drops what it fetches again below the highest one it delivered: a batch can start
        past the cursor, or have a hole inside (the three-kills test saw tags 45, then 48
        on). Whatever the cause, the views' cursor is the truth: every hole between it and
        the batch's last record is folded from the log, in order with the rest.
        """
        if self.backfill is None:
            return []
        missed: list[SourceRecord] = []
        for topic, first, stop in holes(cursor, records, ends):
            log.warning(
                "delivery of %s[%d] skipped offsets %d..%d (views at %d): folding them "
                "from the log",
                topic,
                partition,
                first,
                stop - 1,
                cursor.get(topic, -1),
            )
            found = await self.backfill(topic, partition, first, stop)
            if [r.offset for r in found] != list(range(first, stop)):
                # Folding past a hole would lose its records for good: fail, and retry.
                raise RuntimeError(
                    f"the log gave back {len(found)} of {topic}[{partition}] "
                    f"offsets {first}..{stop - 1}"
                )
            missed += found
        return missed

    async def _send_letters(self) -> None:
        """Send the dead letters folded so far and wait for their acks: before the changelog
        carries a cursor past their records, since a worker restored from it would not meet
        them again. Kept until acked, so a retried batch, whose records the views' cursor
        has passed, still sends them. One send and one wait a write, not one a partition."""
        letters = list(self.letters)
        if letters:
            await self.send_dead_letters(letters)
            del self.letters[: len(letters)]

    async def _fold(
        self, partition: int, cursor: dict[str, int], records: Sequence[SourceRecord]
    ) -> dict[str, int]:
        """Fold `records` into the views and commit them; returns the cursor after them.

        The loop turns between its three steps (fold, encode, commit), not only between
        partitions: whatever else runs on it (the handing over of the next fetch, the
        flusher, the web endpoints, the changelog write's hand-offs) moves a step a turn,
        and a partition's fold is tens of milliseconds. Nothing else writes the views, and
        the undo values the commit takes (`Reads.before`) are this fold's own."""
        # The partition's database found once, here: the fold is not interrupted. Each key
        # is read once, and its old value kept for the wal's undo.
        reads = Reads(self.store, partition, viewcodec.decode)
        result = fold_batch(
            reads,
            partition,
            cursor,
            records,
            self.max_event_bytes,
            scan=lambda prefix: keys_under(self.store, prefix, partition),
        )
        # Sent, and acked, with the rest of the fetch's (`_send_letters`).
        self.letters += [
            (letter.record.key, encode_dead_letter(letter)) for letter in result.dead_letters
        ]
        # So are the reports of what an erasure took away: its status is their fold.
        if self.send_erasure is not None:
            for applied in result.erasures:
                await self.send_erasure(applied.erasure_id.encode(), erasure.encode(applied))
        await asyncio.sleep(0)  # the loop's turn (`_fold`'s docstring)
        writes = viewcodec.encode_all(result.writes)
        await asyncio.sleep(0)
        self.txn.commit(partition, writes, result.cursor, reads.before)
        self.counts.update(
            applied=result.applied,
            duplicates=result.duplicates,
            dead_letters=len(result.dead_letters),
            erased=sum(len(a.erased) for a in result.erasures),
            replayed=result.skipped,
        )
        return result.cursor


@contextmanager
def collector_paused() -> Iterator[None]:
    """CPython's cycle collector off while a fetch is folded and written (`process`).

    A fetch's objects (examples, aggregates, encoded values: tens of thousands for 8,000
    records) live until its partitions are written, and every collection its allocations
    set off went through them all again. Over bench.ingest's 42,329 records the collector
    took 213 and 392 ms, 8-10% of the agent's time; paused, 31 and 32 ms, one young
    collection after each fetch (`gc.callbacks`, 2026-12-06). Reference counting still
    frees what is dropped; cycles, anyone's, wait until the fetch is done, under a second.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _retry_delay(backoff: float, attempt: int) -> float:
    """Seconds before retry `attempt` (from 1): doubling from `backoff`, at most 10."""
    return min(10.0, backoff * 2.0 ** min(attempt - 1, 5))


def log_backfill(settings: Settings) -> Backfill:
    """A `Backfill` reading the replay log: cold segments, then Kafka."""

    async def backfill(topic: str, partition: int, start: int, stop: int) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        consumer = consumer_for(settings)
        await consumer.start()
        try:
            async with segment_store(settings) as cold:
                async for batch in read_partition(cold, consumer, topic, partition, start, stop):
                    out += source_records([batch])
        finally:
            await stop_consumer(consumer)
        return out

    return backfill
