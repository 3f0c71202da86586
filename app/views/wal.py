"""All-or-nothing batches over a key-value table, so at-least-once delivery folds exactly once.

Per partition a `wal/{p}` key holds the cursor (last offset applied per source topic) and,
while a batch is being written, the old value of every key it touches. The batch's writes go
to one changelog partition in order, so after a crash the table is a prefix of them: either
the batch is complete (the wal says so) or its keys are put back from the undo record.

Where the changelog takes a batch's writes whole (one Kafka record batch, appended whole or
not at all: `tables.views.TableStore.whole_bytes`), no prefix can cut a batch, and the undo
record is not written: on Apache Kafka it was a third of the changelog's bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import orjson

from app.record_batch import unit_fits

Store = MutableMapping[str, bytes]


def keys_under(store: Store, prefix: str, partition: int) -> list[str]:
    """The keys of `partition` that start with `prefix`: a seek in the table's own store when
    it has one (`tables.views.TableStore`), else a pass over a plain mapping."""
    seek = getattr(store, "keys_under", None)
    if seek is not None:
        return list(seek(prefix, partition))
    return [key for key in store if key.startswith(prefix)]


class Reads:
    """A fold's reads of `partition`'s part of the store, decoded by `decode`, each key's
    stored bytes kept as read (`before`): the old values `PartitionTxn.commit` takes.

    Of that partition's database where the store has one (`tables.views.TableStore`), else
    plain lookups. Compiled with the fold (`app.native`): a read a record, it was two Python
    calls of its own."""

    def __init__(
        self, store: Store, partition: int, decode: Callable[[str, bytes | None], Any]
    ) -> None:
        self.decode = decode
        self.before: dict[str, bytes | None] = {}
        reader_in = getattr(store, "reader_in", None)
        self.get: Callable[[str], bytes | None] = store.get
        self.get_raw: Callable[[bytes], bytes | None] | None = (
            None if reader_in is None else reader_in(partition)
        )

    def __call__(self, key: str) -> Any:
        raw = self.get(key) if self.get_raw is None else self.get_raw(key.encode())
        self.before[key] = raw
        return self.decode(key, raw)


def write_batch(store: Store, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
    """Write `items` (None deletes) in order: in one write where the store can
    (`tables.views.TableStore`), else key by key."""
    write = getattr(store, "write_batch", None)
    if write is not None:
        write(partition, items)
        return
    put_each(store, items)


def put_each(store: MutableMapping[Any, Any], items: Iterable[tuple[Any, Any]]) -> None:
    """Put each (key, value) of `items` in order, a None value deleting its key (absent or not):
    a batch written key by key, where a store has no batch of its own."""
    for key, value in items:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def _whole(store: Store, items: Sequence[tuple[str, bytes | None]]) -> bool:
    """Whether `items` reach the store's changelog whole, in one record batch, so that no
    crash can leave part of them (`tables.views.TableStore.whole_bytes`); a plain mapping
    promises nothing."""
    limit: int = getattr(store, "whole_bytes", 0)
    return limit > 0 and unit_fits(items, limit)


def wal_key(partition: int) -> str:
    return f"wal/{partition}"


class PartitionTxn:
    def __init__(self, store: Store) -> None:
        self.store = store

    def cursor(self, partition: int) -> dict[str, int]:
        """The committed cursor, after rolling back a batch that a crash cut short."""
        wal = self._wal(partition)
        pending = wal.get("pending")
        if pending is not None:
            for key, old in pending["undo"].items():
                self._put(key, None if old is None else old.encode())
            wal = {"cursor": wal["cursor"], "pending": None}
            self.store[wal_key(partition)] = orjson.dumps(wal)
        return dict(wal["cursor"])

    def commit(
        self,
        partition: int,
        writes: Mapping[str, bytes | None],
        cursor: Mapping[str, int],
        before: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Write a batch and advance the cursor; `before` may hold keys' current values, read once."""
        known = before or {}

        def old(key: str) -> bytes | None:
            return known[key] if key in known else self.store.get(key)

        # Deleting what is not there writes nothing, not a tombstone.
        items = [(k, v) for k, v in writes.items() if v is not None or old(k) is not None]
        changed = bool(items)
        items.append((wal_key(partition), orjson.dumps({"cursor": dict(cursor), "pending": None})))
        if changed and not _whole(self.store, items):
            undo = {k: _text(old(k)) for k, _ in items[:-1]}
            pending = {"cursor": self._wal(partition)["cursor"], "pending": {"undo": undo}}
            items.insert(0, (wal_key(partition), orjson.dumps(pending)))
        write_batch(self.store, partition, items)

    def _wal(self, partition: int) -> dict[str, Any]:
        raw = self.store.get(wal_key(partition))
        if raw is None:
            return {"cursor": {}, "pending": None}
        wal: dict[str, Any] = orjson.loads(raw)
        return wal

    def _put(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.store.pop(key, None)
        else:
            self.store[key] = value


def read_cursor(store: Store, partition: int) -> dict[str, int]:
    """The last offset applied per source topic of a partition, without rolling anything back."""
    raw = store.get(wal_key(partition))
    return dict(orjson.loads(raw)["cursor"]) if raw is not None else {}


def committed(store: Store, partitions: int) -> Store:
    """The store as of the last complete batch of every partition: what readers should see.

    Live batches are written without yielding to the event loop, so readers never meet one
    half-done; only after a crash, until the partition's next batch rolls it back, do they.
    """
    undo: dict[str, str | None] = {}
    for p in range(partitions):
        raw = store.get(wal_key(p))
        pending = orjson.loads(raw)["pending"] if raw is not None else None
        if pending is not None:
            undo.update(pending["undo"])
    if not undo:
        return store
    return _Overlay(store, undo)


class _Overlay(MutableMapping[str, bytes]):
    """Read-only view of a store with some keys replaced by their pre-batch values."""

    def __init__(self, store: Store, undo: Mapping[str, str | None]) -> None:
        self.store, self.undo = store, undo

    def __getitem__(self, key: str) -> bytes:
        if key in self.undo:
            old = self.undo[key]
            if old is None:
                raise KeyError(key)
            return old.encode()
        return self.store[key]

    def __setitem__(self, key: str, value: bytes) -> None:
        raise TypeError("read-only")

    def __delitem__(self, key: str) -> None:
        raise TypeError("read-only")

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)


def _text(raw: bytes | None) -> str | None:
    # View values are orjson output, always UTF-8.
    return None if raw is None else raw.decode()
