"""All-or-nothing batches over a key-value table, so at-least-once delivery folds exactly once.

Per partition a `wal/{p}` key holds the cursor (last offset applied per source topic) and,
while a batch is being written, the old value of every key it touches. The batch's writes go
to one changelog partition in order, so after a crash the table is a prefix of them: either
the batch is complete (the wal says so) or its keys are put back from the undo record.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

Store = MutableMapping[str, bytes]


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
        self, partition: int, writes: Mapping[str, bytes | None], cursor: Mapping[str, int]
    ) -> None:
        wal = self._wal(partition)
        if writes:
            undo = {k: _text(self.store.get(k)) for k in writes}
            self.store[wal_key(partition)] = orjson.dumps(
                {"cursor": wal["cursor"], "pending": {"undo": undo}}
            )
            for key, value in writes.items():
                self._put(key, value)
        self.store[wal_key(partition)] = orjson.dumps({"cursor": dict(cursor), "pending": None})

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


def _text(raw: bytes | None) -> str | None:
    # View values are orjson output, always UTF-8.
    return None if raw is None else raw.decode()
