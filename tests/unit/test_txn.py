from __future__ import annotations

import orjson

from app.views.wal import PartitionTxn, committed, wal_key


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
