from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import orjson
from rocksdict import Options, Rdict

from app.views.compat import write_batch
from app.views.wal import PartitionTxn, committed, put_each, wal_key


def test_commit_writes_and_advances_cursor() -> None:
    store: dict[str, bytes] = {"a": b"1"}
    txn = PartitionTxn(store)
    assert txn.cursor(3) == {}
    txn.commit(3, {"a": b"2", "b": b"3"}, {"t": 9})
    assert store["a"] == b"2" and store["b"] == b"3"
    assert txn.cursor(3) == {"t": 9}


def test_a_batch_cut_short_is_rolled_back() -> None:
    store: dict[str, bytes] = {"a": b"1"}
    txn = PartitionTxn(store)
    txn.commit(0, {"a": b"2"}, {"t": 1})
    # Simulate a crash after the wal's pending record and one of two writes.
    undo = {"a": "2", "b": None}
    store[wal_key(0)] = orjson.dumps({"cursor": {"t": 1}, "pending": {"undo": undo}})
    store["a"], store["b"] = b"9", b"9"
    assert txn.cursor(0) == {"t": 1}
    assert store["a"] == b"2" and "b" not in store
    assert orjson.loads(store[wal_key(0)])["pending"] is None


def test_partitions_are_independent() -> None:
    store: dict[str, bytes] = {}
    txn = PartitionTxn(store)
    txn.commit(0, {"x": b"1"}, {"t": 5})
    txn.commit(1, {}, {"t": 2})
    assert txn.cursor(0) == {"t": 5} and txn.cursor(1) == {"t": 2}


def test_readers_see_only_complete_batches() -> None:
    store: dict[str, bytes] = {"a": b"1"}
    PartitionTxn(store).commit(2, {"a": b"2"}, {"t": 1})
    undo = {"a": "2", "b": None}
    store[wal_key(2)] = orjson.dumps({"cursor": {"t": 1}, "pending": {"undo": undo}})
    store["a"], store["b"] = b"9", b"9"  # a crash cut this batch short
    view = committed(store, partitions=4)
    assert view["a"] == b"2" and view.get("b") is None and view.get("c", b"-") == b"-"
    assert committed({"a": b"1"}, partitions=4) == {"a": b"1"}


class Batched(dict[str, bytes]):
    """A store that writes a batch at once, as the worker's table does: what it was handed."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.batches: list[tuple[int, list[tuple[str, bytes | None]]]] = []

    def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
        self.batches.append((partition, list(items)))
        put_each(self, items)


def test_a_batch_is_one_write_in_wal_order_with_no_tombstone_for_what_was_absent() -> None:
    store = Batched({"a": b"1", "gone": b"x"})
    PartitionTxn(store).commit(4, {"a": b"2", "gone": None, "never": None}, {"t": 3})
    [(partition, items)] = store.batches
    assert partition == 4
    keys = [key for key, _ in items]
    assert keys == [wal_key(4), "a", "gone", wal_key(4)]  # pending, writes, done
    assert orjson.loads(items[0][1] or b"")["pending"]["undo"] == {"a": "1", "gone": "x"}
    assert dict(store) == {"a": b"2", wal_key(4): items[-1][1]}


class Whole(Batched):
    """A store whose changelog takes a write of up to `whole_bytes` whole, as the worker's
    table does on Apache Kafka (one record batch, appended whole or not at all)."""

    def __init__(self, whole_bytes: int, *args: object) -> None:
        super().__init__(*args)
        self.whole_bytes = whole_bytes


def test_a_batch_the_changelog_takes_whole_is_written_without_its_undo() -> None:
    store = Whole(10_000, {"a": b"1", "gone": b"x"})
    txn = PartitionTxn(store)
    txn.commit(4, {"a": b"2", "gone": None, "never": None}, {"t": 3})
    [(_, items)] = store.batches
    assert [key for key, _ in items] == ["a", "gone", wal_key(4)]  # no pending record
    assert orjson.loads(items[-1][1] or b"") == {"cursor": {"t": 3}, "pending": None}
    assert txn.cursor(4) == {"t": 3} and dict(store) == {"a": b"2", wal_key(4): items[-1][1]}


def test_a_batch_larger_than_the_changelog_takes_whole_keeps_its_undo() -> None:
    big = b"v" * 600
    store = Whole(1_000, {"a": b"1"})
    PartitionTxn(store).commit(0, {"a": big, "b": big}, {"t": 1})
    [(_, items)] = store.batches
    assert [key for key, _ in items] == [wal_key(0), "a", "b", wal_key(0)]
    assert orjson.loads(items[0][1] or b"")["pending"]["undo"] == {"a": "1", "b": None}
    # Nothing written, only the cursor: nothing to undo, whatever the size.
    PartitionTxn(store).commit(0, {}, {"t": 2})
    assert [key for key, _ in store.batches[-1][1]] == [wal_key(0)]


def test_a_partition_s_batch_is_one_rocksdb_write_in_order(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "p2"), Options(raw_mode=True))
    opened: list[int] = []

    def open_db(partition: int) -> Rdict:
        opened.append(partition)
        return db

    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=open_db))
    db[b"old"] = b"1"
    write_batch(table, 2, [(b"k", b"1"), (b"k", b"2"), (b"old", None), (b"j", b"3"), (b"j", None)])
    assert opened == [2]
    assert dict(db.items()) == {b"k": b"2"}
    db.close()
