"""BatchWriter: a batch's changes in few record batches, the last alone, and no silent wait."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.views.changelog import BatchWriter


class FakeBatch:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.room = room

    def append(self, *, key: bytes, value: bytes | None, timestamp: Any) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Acks each batch with the offset of its first record, as a broker does."""

    def __init__(self, room: int = 3, acks: bool = True) -> None:
        self.room, self.acks = room, acks
        self.sent: dict[int, list[list[tuple[bytes, bytes | None]]]] = {}
        self.ends: dict[int, int] = {}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.setdefault(partition, []).append(batch.records)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        base = self.ends.get(partition, 0)
        self.ends[partition] = base + len(batch.records)
        if self.acks:
            future.set_result(type("Meta", (), {"offset": base})())
        return future


class Writer(BatchWriter):
    def __init__(self, producer: FakeProducer, ack_timeout: float = 60.0) -> None:
        super().__init__("unused:9092", "views-changelog", 1_000_000, ack_timeout)
        self.fake = producer

    async def _started(self) -> Any:
        self._producer = self.fake  # type: ignore[assignment]
        return self.fake


async def test_changes_go_in_order_with_the_last_alone_and_its_offset_returned() -> None:
    producer = FakeProducer(room=3)
    changes = [(0, f"k{i}".encode(), b"v") for i in range(5)] + [(1, b"a", None), (0, b"w", b"x")]
    offsets = await Writer(producer).write(changes)
    assert producer.sent[0] == [
        [(b"k0", b"v"), (b"k1", b"v"), (b"k2", b"v")],
        [(b"k3", b"v"), (b"k4", b"v")],
        [(b"w", b"x")],
    ]
    assert producer.sent[1] == [[(b"a", None)]]
    assert offsets == {0: 5, 1: 0}  # the offset of each partition's last record


async def test_unacknowledged_writes_raise_instead_of_waiting_forever() -> None:
    writer = Writer(FakeProducer(acks=False), ack_timeout=0.05)
    with pytest.raises(TimeoutError, match="2 of 2 changelog batches not acknowledged"):
        await writer.write([(0, b"k", b"v"), (0, b"w", b"x")])
