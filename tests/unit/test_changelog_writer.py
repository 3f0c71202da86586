"""BatchWriter: a batch's changes in few record batches (the last alone on Tansu), dead
letters in their keys' partitions, and no silent wait."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatch

from app.record_batch import PlainBatch, RecordBatch, seal
from app.topic_admin import key_partition
from app.views import changelog
from app.views.changelog import BatchWriter
from tables.views import Unit


class FakeProducer:
    """Acks each batch with the offset of its first record, as a broker does."""

    def __init__(self, acks: bool = True, refuse: bool = False) -> None:
        self.acks = acks
        self.refuse = refuse  # every batch's ack an error, as a broker's refusal is
        self.topics: set[str] = set()
        self.sent: dict[int, list[list[tuple[bytes, bytes | None]]]] = {}
        self.ends: dict[int, int] = {}
        self.batches = threading.Semaphore(0)  # released once a batch

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Any:
        # An open batch would linger `linger_ms` in the producer, and hold up the next.
        assert batch.closed(), "a batch handed over still open"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # Sent on a later turn of the producer's loop, as aiokafka's sender does.
        loop.call_soon(self._deliver, batch, topic, partition, future)
        return future

    def _deliver(
        self, batch: RecordBatch, topic: str, partition: int, future: asyncio.Future[Any]
    ) -> None:
        self.topics.add(topic)
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
        self.sent.setdefault(partition, []).append(records)
        self.batches.release()
        base = self.ends.get(partition, 0)
        self.ends[partition] = base + len(records)
        if self.refuse:
            future.set_exception(MessageSizeTooLargeError())
        elif self.acks:
            future.set_result(type("Meta", (), {"offset": base})())

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}


WRITERS: list[BatchWriter] = []


@pytest.fixture(autouse=True)
async def writers_stopped() -> AsyncIterator[None]:
    """Each test's writers stopped after it, their threads joined."""
    yield
    while WRITERS:
        writer = WRITERS.pop()
        writer._producer = None  # the fake has no stop
        await writer.stop()


class Writer(BatchWriter):
    """Batches of three of the records below at most: a batch's header is 61 bytes, and
    each record (a key of one or two bytes, a value of one) nine or ten."""

    def __init__(
        self,
        producer: FakeProducer,
        ack_timeout: float = 60.0,
        last_alone: bool = False,
        compression: str | None = None,
    ) -> None:
        super().__init__(
            "unused:9092",
            "views-changelog",
            91,
            ack_timeout,
            last_alone=last_alone,
            compression=compression,
        )
        self.fake = producer
        WRITERS.append(self)

    async def _started(self) -> Any:
        self._producer = self.fake  # type: ignore[assignment]
        return self.fake


# Each change a unit of its own, as Faust's own table writes are.
CHANGES: list[Unit] = [(0, [(f"k{i}".encode(), b"v")]) for i in range(5)]
CHANGES += [(1, [(b"a", None)]), (0, [(b"w", b"x")])]


async def test_changes_go_in_order_in_full_batches_and_the_last_offset_returned() -> None:
    producer = FakeProducer()
    offsets = await Writer(producer).write(CHANGES)
    assert producer.sent[0] == [
        [(b"k0", b"v"), (b"k1", b"v"), (b"k2", b"v")],
        [(b"k3", b"v"), (b"k4", b"v"), (b"w", b"x")],
    ]
    assert producer.sent[1] == [[(b"a", None)]]
    assert offsets == {0: 5, 1: 0}  # the offset of each partition's last record


async def test_compressed_changes_go_as_plain_ones_do_sealed_off_the_loops_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[str] = []

    def watched(batch: PlainBatch, compression: str | None = None) -> RecordBatch:
        threads.append(threading.current_thread().name)
        return seal(batch, compression)

    monkeypatch.setattr(changelog, "seal", watched)
    plain, packed = FakeProducer(), FakeProducer()
    writer = Writer(packed, compression="zstd")
    offsets = await writer.write(CHANGES)
    assert packed.sent  # decoded from zstd batches by aiokafka's reader
    assert offsets == await Writer(plain).write(CHANGES)
    assert packed.sent == plain.sent  # the same records, batches and order
    assert threads == ["changelog-writer"] * 6  # three batches each, none on the loop's thread
    assert writer._io.running
    writer._producer = None  # the fake has no stop
    await writer.stop()
    assert not writer._io.running


async def test_a_write_goes_through_while_the_callers_loop_does_not_turn() -> None:
    # The fold holds the worker's loop for tens of milliseconds at a time: the write in
    # flight must not need its turns to send and be acked.
    producer = FakeProducer()
    writer = Writer(producer)
    writing = asyncio.ensure_future(writer.write(CHANGES))
    await asyncio.sleep(0)  # framed, and handed to the writer's thread
    # This loop is held here, as by a fold, until all three batches are sent.
    assert all(producer.batches.acquire(timeout=10) for _ in range(3))
    assert await writing == {0: 5, 1: 0}


async def test_on_tansu_the_last_change_goes_alone() -> None:
    producer = FakeProducer()
    offsets = await Writer(producer, last_alone=True).write(CHANGES)
    assert producer.sent[0] == [
        [(b"k0", b"v"), (b"k1", b"v"), (b"k2", b"v")],
        [(b"k3", b"v"), (b"k4", b"v")],
        [(b"w", b"x")],
    ]
    assert producer.sent[1] == [[(b"a", None)]]
    assert offsets == {0: 5, 1: 0}


async def test_unacknowledged_writes_raise_instead_of_waiting_forever() -> None:
    writer = Writer(FakeProducer(acks=False), ack_timeout=0.05)
    with pytest.raises(TimeoutError, match="1 of 1 changelog batches not acknowledged"):
        await writer.write([(0, [(b"k", b"v"), (b"w", b"x")])])


async def test_a_unit_that_fits_a_batch_goes_in_one_and_units_share_batches() -> None:
    producer = FakeProducer()
    units: list[Unit] = [
        (0, [(b"k0", b"v"), (b"k1", b"v")]),
        (0, [(b"k2", b"v"), (b"k3", b"v")]),
        (0, [(b"k4", b"v")]),
        (1, [(b"a", None)]),
        (0, [(b"w", b"x")]),
    ]
    offsets = await Writer(producer).write(units)
    assert producer.sent[0] == [
        [(b"k0", b"v"), (b"k1", b"v")],  # k2 would have cut the next unit
        [(b"k2", b"v"), (b"k3", b"v"), (b"k4", b"v")],
        [(b"w", b"x")],
    ]
    assert producer.sent[1] == [[(b"a", None)]]
    assert offsets == {0: 5, 1: 0}
    assert Writer(producer).whole_bytes == 91
    assert Writer(producer, last_alone=True).whole_bytes == 0  # Tansu: nothing promised


async def test_published_records_go_to_their_keys_partitions_in_order_in_few_batches() -> None:
    producer = FakeProducer()
    keys = [b"a", b"b", b"c", b"a", b"d", b"a", b"b", b"a"]
    records = [(key, str(i).encode()) for i, key in enumerate(keys)]
    await Writer(producer).publish("dead-letters", [*records, (None, b"keyless")])
    assert producer.topics == {"dead-letters"}
    placed = {p: [r for batch in batches for r in batch] for p, batches in producer.sent.items()}
    for key in dict.fromkeys(keys):
        # Where a producer's default partitioner puts them, in the order given.
        assert [r for r in placed[key_partition(key, 4)] if r[0] == key] == [
            r for r in records if r[0] == key
        ]
    assert sum(rs.count((None, b"keyless")) for rs in placed.values()) == 1
    # As full as `Writer`'s batches of three go: not a batch a record.
    for partition, batches in producer.sent.items():
        assert len(batches) == -(-len(placed[partition]) // 3)


async def test_unacknowledged_publishing_raises_instead_of_waiting_forever() -> None:
    writer = Writer(FakeProducer(acks=False), ack_timeout=0.05)
    with pytest.raises(TimeoutError, match="1 of 1 dead-letters batches not acknowledged"):
        await writer.publish("dead-letters", [(b"k", b"v")])


async def test_on_tansu_a_partitions_last_published_record_goes_alone() -> None:
    producer = FakeProducer()
    records = [(b"a", str(i).encode()) for i in range(5)]  # one key: one partition
    await Writer(producer, last_alone=True).publish("dead-letters", records)
    assert list(producer.sent.values()) == [[records[0:3], records[3:4], records[4:5]]]


async def test_a_refused_batch_fails_the_publishing_and_the_write() -> None:
    # Letters taken for sent would be dropped: the caller keeps them until this returns.
    with pytest.raises(MessageSizeTooLargeError):
        await Writer(FakeProducer(refuse=True)).publish("dead-letters", [(b"k", b"v")])
    with pytest.raises(MessageSizeTooLargeError):
        await Writer(FakeProducer(refuse=True)).write([(0, [(b"k", b"v")])])
