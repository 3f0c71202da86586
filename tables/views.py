"""The `views` table: examples, per-partition aggregates and their cursors, in one changelog.

One table rather than three because a batch's writes must reach one changelog partition in
order: that is what lets `app.views.wal` undo a batch a crash cut short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, StoreT

from app.settings import Settings
from app.views.compat import partition_reader, prefix_keys, write_batch
from tables.memory import SharedBudget

TABLE_NAME = "views"


# (changelog partition, [(key, value or None for a delete), ...]): changes that reach the
# changelog together, whole, where the writer can (`ChangelogWriter.whole_bytes`).
Unit = tuple[int, list[tuple[bytes, bytes | None]]]


class ChangelogWriter(Protocol):
    """Writes units of changes in order; returns the last offset written per changelog partition.

    A unit of at most `whole_bytes` bytes (`app.record_batch.unit_fits`) reaches the log
    whole or not at all; 0 promises nothing.
    """

    @property
    def whole_bytes(self) -> int: ...

    async def write(self, units: Sequence[Unit]) -> dict[int, int]: ...

    async def stop(self) -> None: ...


class ViewsTable(faust.Table[bytes, bytes]):
    """A table whose changes reach the changelog a batch at a time, on `wait_changelog`.

    Writes go to the local store at once, as in any Faust table; instead of one changelog
    send per write, they are kept and written together by a `ChangelogWriter`. Until
    `wait_changelog` returns they may be lost with the worker, which is why the ingest step
    waits for it before its source offsets can be committed. With RocksDB (rocksdict) its
    partitions share `memory_bytes` of RocksDB memory (`tables.memory`).
    """

    def __init__(
        self,
        app: faust.App,
        *,
        writer: ChangelogWriter,
        memory_bytes: int,
        **kwargs: Any,
    ) -> None:
        self.writer = writer
        self.memory_bytes = memory_bytes
        self.unsent: list[Unit] = []
        super().__init__(app, **kwargs)

    def _new_store(self) -> StoreT[bytes, bytes]:
        store = super()._new_store()
        if isinstance(store, RocksDBStore) and store.use_rocksdict:
            options = dict(ROCKSDB_OPTIONS)
            options.pop("block_cache_size")  # the shared budget is the cache
            store.rocksdb_options = SharedBudget(self.memory_bytes, **options)
        return store

    def on_key_set(self, key: bytes, value: bytes) -> None:
        self.unsent.append((self._changelog_partition(key), [(key, value)]))

    def on_key_del(self, key: bytes) -> None:
        self.unsent.append((self._changelog_partition(key), [(key, None)]))

    async def wait_changelog(self) -> None:
        """Write every change so far to the changelog; kept for the next call if that fails."""
        units = list(self.unsent)
        if not units:
            return
        offsets = await self.writer.write(units)
        del self.unsent[: len(units)]
        topic = self.changelog_topic.get_topic_name()
        for partition, offset in offsets.items():
            # What Faust does per acked write: recovery then starts after this offset.
            self.data.set_persisted_offset(TP(topic, partition), offset)

    def _changelog_partition(self, key: bytes) -> int:
        partition = self.partition_for_key(key)
        assert partition is not None  # tables are co-partitioned with their source
        return partition


# RocksDB's memory per partition database. Faust's defaults (64 MiB x 3 memtables and a
# 2 GiB block cache, each per partition) let a worker's RSS grow by ~480 bytes an event up
# to gigabytes (bench/memory.py, 2026-11-28: 298 MB at 50k events, 632 MB at 650k). The
# block cache is the worker's one budget for all partitions (`tables.memory`), where
# rocksdict is the driver.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 32 * 1024 * 1024,
    "block_cache_compressed_size": 8 * 1024 * 1024,
}


def define(app: faust.App, settings: Settings, writer: ChangelogWriter) -> ViewsTable:
    table = ViewsTable(
        app,
        writer=writer,
        memory_bytes=settings.views_memory_mb * 1024 * 1024,
        options=dict(ROCKSDB_OPTIONS),
        name=TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        beacon=app.tables.beacon,
        help="examples, dataset and model aggregates, per-partition cursors",
    )
    app.tables.add(table)
    return table


class TableStore(MutableMapping[str, bytes]):
    """The table as a plain `str -> bytes` mapping: the shape the domain adapters expect.

    It reads and writes the table's store directly and queues each change for the changelog
    itself, as `Table.__setitem__` would, without the layers of Faust's mapping in between:
    ingestion makes several of these calls per record.
    """

    def __init__(self, table: ViewsTable) -> None:
        self.table = table

    def __getitem__(self, key: str) -> bytes:
        value = self.table.data.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.data.get(key.encode())
        return default if value is None else value

    def reader_in(self, partition: int) -> Callable[[bytes], bytes | None]:
        """A reader of (encoded) keys in one partition's database: how the fold reads
        (`app.views.wal.Reads`)."""
        return partition_reader(self.table, partition)

    def __setitem__(self, key: str, value: bytes) -> None:
        raw = key.encode()
        self.table.on_key_set(raw, value)
        self.table.data[raw] = value

    def __delitem__(self, key: str) -> None:
        raw = key.encode()
        if self.table.data.get(raw) is None:
            raise KeyError(key)
        self.table.on_key_del(raw)
        del self.table.data[raw]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else k for k in self.table.data)

    @property
    def whole_bytes(self) -> int:
        """`write_batch`'s items up to this size reach the changelog whole (`app.views.wal`)."""
        return self.table.writer.whole_bytes

    def write_batch(self, partition: int, items: Sequence[tuple[str, bytes | None]]) -> None:
        """Write `items` (None deletes) of one partition in order, in one write of its
        database, and queue them for the changelog as one unit: a batch's hundreds of
        writes, one put each through Faust's store, took a fifth of ingestion's time
        (bench.ingest --profile)."""
        raw = [(key.encode(), value) for key, value in items]
        self.table.unsent.append((partition, raw))
        write_batch(self.table, partition, raw)

    def keys_under(self, prefix: str, partition: int) -> Iterator[str]:
        """One partition's keys under `prefix`, by a seek (`app.views.wal.keys_under`)."""
        return (k.decode() for k in prefix_keys(self.table, partition, prefix.encode()))

    def __len__(self) -> int:
        return len(self.table.data)
