"""Every use of Faust's and aiokafka's private internals, and the versions they suit.

An upgrade can change any private attribute without notice, so this module is the only one
that touches them, and `check_versions()` refuses, at start, versions it was not written and
tested for. Raise SUPPORTED only after the three-kills, restore and cluster tests pass.

The consumer, committing for the views what the views hold. Faust commits the highest offset below which every record was acked, from its own
bookkeeping, and that bookkeeping goes wrong at a start. Faust 0.15.3 resumes the stream
partitions before it seeks them to the committed offsets (faust-streaming#216): records
fetched before the seek are delivered and acked, the seek moves Faust's read offset back,
the next prefetched record looks like a jump, and the gap rule (meant for compacted topics)
marks the range done a second time. The acked list then holds those offsets twice, and
`_new_offset`, which commits the first run of consecutive numbers, finds a run of two: the
group's offset moved by one a commit for the rest of the worker's life (robinhood/faust#625;
in the three-kills test, 321 to 349 records behind on 7 of its 8 topic-partitions). A head
that is never acked, a record dropped in the same race, stalls it for good.

For the topics the views fold, the group commits what the Ingestor reports durable
(`app.views.ingestor.DurableCursor`, step 9 of its journey): the views' cursor + 1 once the
batch's changelog writes are acknowledged. Delivery can then
start nowhere but at the views' end; what Faust skips on the way in, `Ingestor._missed`
folds from the log. For other topics Faust's bookkeeping stays, with acked offsets and gap
ranges merged as a set so the duplicates cannot stall it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from aiokafka.structs import ConsumerRecord
from faust.streams import _current_event
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.types import TP, Message
from rocksdict import WriteBatch

from app.views.wal import put_each

SUPPORTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}

log = logging.getLogger(__name__)


class UnsupportedVersion(RuntimeError):
    """An installed Faust or aiokafka this module was not written for."""


def check_versions() -> None:
    found = {name: version(name) for name in SUPPORTED}
    wrong = {name: v for name, v in found.items() if v != SUPPORTED[name]}
    if wrong:
        raise UnsupportedVersion(
            f"installed {wrong}; app/views/compat.py uses private internals of "
            f"{SUPPORTED} only: install those (pip install -e .) or port that module first"
        )


class _Origin:
    """Stands in for a Faust event where a table asks which source partition a write is for."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


@contextmanager
def writing_for(topic: str, partition: int) -> Iterator[None]:
    """Table reads and writes inside are filed under this source partition, as Faust files
    them under the current event's; the event before is current again after."""
    origin = _Origin(topic, partition)
    token = _current_event.set(weakref.ref(origin))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


# Hands the records of one fetch, by topic-partition, on to their reader.
DeliverFetch = Callable[[Mapping[TP, Sequence[ConsumerRecord]]], Awaitable[None]]
LogEnds = Callable[[Collection[tuple[str, int]]], Awaitable[Mapping[tuple[str, int], int]]]
Sought = Callable[[Mapping[TP, int]], None]


def fetch_event(app: Any, value: Any, first: TP, last_offset: int, generation: int) -> Any:
    """A Faust event carrying a whole fetch: acked, tracked and dropped at a rebalance (its
    `generation_id`) by the agent's stream as any one record's would be."""
    message = Message(
        first.topic,
        first.partition,
        last_offset,
        0.0,
        0,
        None,
        None,
        None,
        None,
        tp=first,
        generation_id=generation,
    )
    return app.create_event(None, value, None, message)


async def all_metadata(consumer: AIOKafkaConsumer) -> ClusterMetadata:
    """Metadata of every topic (a consumer's own covers only what it was assigned)."""
    return await consumer._client.fetch_all_metadata()


class SeekingThread(AIOKafkaConsumerThread):
    """Faust's consumer thread, asking for the group's offsets of all its partitions at once.

    aiokafka's `seek_to_committed` sends one OffsetFetch a partition, one after another: a
    worker holds the views' topics and the tables' changelogs, about 60 partitions, and
    that took 110-160 ms of every assignment before the first fetch (bench.ingest, whose
    span runs from the assignment, 2026-12-07). One request names them all; what is done
    with the answer is aiokafka's own rule."""

    async def seek_to_committed(self) -> Mapping[TP, Any]:  # an int, or None: no commit yet
        return await self.call_thread(self._seek_to_committed)  # type: ignore[no-any-return]

    async def _seek_to_committed(self) -> dict[Any, int | None]:
        consumer = self._ensure_consumer()
        partitions = consumer.assignment()
        found = await consumer._coordinator.fetch_committed_offsets(partitions)
        offsets: dict[Any, int | None] = {}
        for tp in partitions:
            committed = found[tp].offset if tp in found else -1
            offsets[tp] = None if committed == -1 else committed
            if committed > 0:
                consumer.seek(tp, committed)
        return offsets


class CommittingConsumer(Consumer):
    """Faust's consumer, with two changes for the topics the views fold (`topics`).

    It commits what `committable` reports durable (`_new_offset`), and it hands each fetch's
    records of those topics to `deliver` whole, in place of one Faust message and one
    stream event per record: Faust's per-record path alone caps a worker at about 0.07 of
    raw consume (`bench/ceiling.py`). The rest of a fetch (the registry, the changelogs
    during recovery) goes Faust's way.
    """

    def __init__(
        self,
        *args: Any,
        committable: Callable[[str, int], int | None],
        topics: Collection[str],
        deliver: DeliverFetch | None = None,
        log_ends: LogEnds | None = None,
        sought: Sought | None = None,
        **kwargs: Any,
    ) -> None:
        self.committable, self.durable_topics = committable, frozenset(topics)
        self.deliver, self.log_ends, self.sought = deliver, log_ends, sought
        super().__init__(*args, **kwargs)

    def _new_consumer_thread(self) -> SeekingThread:
        return SeekingThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 (Faust's)
        records, active = await super()._wait_next_records(timeout)
        if not records or self.deliver is None:
            return records, active
        ours = {tp: rs for tp, rs in records.items() if tp.topic in self.durable_topics}
        if not ours:
            return records, active
        rest = {tp: rs for tp, rs in records.items() if tp.topic not in self.durable_topics}
        # As Faust's `getmany` does: nothing from a paused partition, nothing mid-rebalance
        # (the fetch position is sought back to the committed offset then).
        ours = {
            tp: rs
            for tp, rs in ours.items()
            if active is None or tp in active or tp in self._buffered_partitions
        }
        if ours and self.flow_active and not self.should_stop:
            await self.deliver(ours)
        return rest, active

    async def perform_seek(self) -> None:
        """Faust's seek to the group's offsets, then back to the log's start wherever the
        group's offset is past the log's end.

        A broker that lost its log (and got back from S3 what was flushed) can be handed,
        by a worker still running on the old log, offsets past the restored end. Apache
        Kafka answers a fetch there with OFFSET_OUT_OF_RANGE and the consumer resets to
        the earliest offset; Tansu answers with nothing, so the partition was never read
        again (measured: a fetch at 100 of a 15-record log waits for ever). Both brokers
        now read from the start, where the fold skips what the views already hold, and the
        offset the group holds is forgotten, so that the views' cursor is committed
        although it is lower (Faust commits only offsets past the group's).

        ListOffsets names the partitions to look at; Tansu's answer is short of the end
        after batched writes (LOCAL-SERVICES.md), so `log_ends` confirms each with a
        fetch's high-water mark. If it cannot, the partition is read from its start: slower,
        never wrong.

        The group's offsets that stand go to `sought`: views that lack the records below
        them (dropped for a new log epoch or layout) are caught up from the log.
        """
        await super().perform_seek()
        ours = {
            tp: offset
            for tp in self.assignment()
            if tp.topic in self.durable_topics
            and (offset := self._committed_offset.get(tp)) is not None
        }
        try:
            await self._seek_within_log(ours)
        finally:
            if self.sought is not None:
                self.sought({tp: ours[tp] for tp in ours if self._committed_offset.get(tp)})

    async def _seek_within_log(self, ours: Mapping[TP, int]) -> None:
        if not ours:
            return
        listed = await self.highwaters(*ours)
        past = {tp: listed[tp] for tp, offset in ours.items() if offset > listed.get(tp, offset)}
        if past and self.log_ends is not None:
            try:
                exact = await self.log_ends([(tp.topic, tp.partition) for tp in past])
                past = {
                    tp: end
                    for tp in past
                    if ours[tp] > (end := exact.get((tp.topic, tp.partition), ours[tp]))
                }
            except Exception as exc:  # the broker away: from the start, to be safe
                log.warning("could not read the log's end of %s: %r", sorted(past), exc)
        if not past:
            return
        starts = await self.earliest_offsets(*past)
        for tp, end in past.items():
            log.warning(
                "the group's offset %d of %s[%d] is past the log's end %d (the broker lost "
                "its log): reading it from its start, %d",
                ours[tp],
                tp.topic,
                tp.partition,
                end,
                starts[tp],
            )
            self._committed_offset[tp] = None
        # In the consumer's own thread, as Faust's seek to the committed offsets is: its
        # `seek` changes the fetcher's state from this one, under a fetch being drained
        # (a KeyError in aiokafka's `fetched_records` crashed a worker so).
        await self.seek_wait({tp: starts[tp] for tp in past})

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        # Faust commits only partitions it holds acks for, and a fetch event is acked under
        # its first partition alone: the others of the views' topics must be asked too, or a
        # partition never first in a fetch since the last rebalance is never committed.
        listed = set(Consumer._filter_tps_with_pending_acks(self, topics))
        yield from listed
        for tp in self.assignment():
            asked = topics is None or tp in topics or tp.topic in topics
            if asked and tp.topic in self.durable_topics and tp not in listed:
                yield tp

    def _new_offset(self, tp: Any) -> int | None:
        acked, index, gaps = self._acked[tp], self._acked_index[tp], self._gap[tp]
        if tp.topic not in self.durable_topics:
            return next_offset(acked, index, gaps, self._committed_offset[tp])
        offset = self.committable(tp.topic, tp.partition)
        if offset is None:
            return None  # nothing folded here yet
        # Faust's record of acks below it is of no more use.
        acked[:] = [o for o in acked if o >= offset]
        index.difference_update([o for o in index if o < offset])
        gaps.chop(0, offset)
        return offset  # committed only if past the group's offset (`_should_commit`)


def next_offset(acked: list[int], index: set[int], gaps: Any, committed: int | None) -> int | None:
    """The offset to commit next, or None; what it commits leaves `acked`, `index` and `gaps`."""
    if not acked:
        return None
    done = set(acked)
    if gaps:
        highest = max(done)
        for gap in gaps.overlap(0, highest + 1):
            done.update(range(gap.begin, gap.end))
        gaps.chop(0, max(done) + 1)
    ordered = sorted(done)
    if committed and ordered[0] - committed > 1:
        acked[:] = ordered  # the record at the head is still on its way
        return None
    end = ordered[0]
    for offset in ordered[1:]:
        if offset != end + 1:
            break
        end = offset
    acked[:] = [o for o in ordered if o > end]
    index.difference_update(range(ordered[0], end + 1))
    return end + 1


def partition_reader(table: Any, partition: int) -> Callable[[bytes], bytes | None]:
    """A reader of keys in one partition's store of a table: the get of its RocksDB database,
    as Faust's store reads under an event of that partition, without the layers around it
    (key and value codecs, the current event, the key-to-partition hint), which took more
    time than the read (py-spy, bench.ingest); a store without one is read as a mapping.
    Found once for a fold's reads, not once a key."""
    data = table.data
    open_db = getattr(data, "_db_for_partition", None)
    if open_db is None:
        return data.get  # type: ignore[no-any-return]
    return open_db(partition).get  # type: ignore[no-any-return]


def write_batch(table: Any, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
    """Put (or, for None, delete) `items` in order in one partition's store of a table: one
    RocksDB write batch of its database (Faust's `_db_for_partition`), as Faust's own
    changelog recovery writes, rather than a put each through Faust's store; a store without
    one is written key by key. Faust's key-to-partition cache is not told: it is a hint,
    and a key it lacks is looked up in every partition's database."""
    data = table.data
    open_db = getattr(data, "_db_for_partition", None)
    if open_db is None:
        put_each(data, items)
        return
    batch = WriteBatch(raw_mode=True)
    for key, value in items:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    open_db(partition).write(batch)


def prefix_keys(table: Any, partition: int, prefix: bytes) -> Iterator[bytes]:
    """A table's keys in one partition's store that start with `prefix`, by a seek in its
    RocksDB database (Faust's `_db_for_partition`); a store without one is scanned whole."""
    data = table.data
    open_db = getattr(data, "_db_for_partition", None)
    if open_db is None:
        yield from (key for key in data if bytes(key).startswith(prefix))
        return
    cursor = open_db(partition).iter()
    cursor.seek(prefix)
    while cursor.valid():
        key = cursor.key()
        if not key.startswith(prefix):
            break
        yield key
        cursor.next()
