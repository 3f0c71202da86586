"""The `views` table: examples, per-partition aggregates and their cursors, in one changelog.

One table rather than three because a batch's writes must reach one changelog partition in
order: that is what lets `app.adapters.txn` undo a batch a crash cut short.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import faust

from app.settings import Settings

TABLE_NAME = "views"


def define(app: faust.App, settings: Settings) -> Any:
    return app.Table(
        TABLE_NAME,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help="examples, dataset and model aggregates, per-partition cursors",
    )


class TableStore(MutableMapping[str, bytes]):
    """The table as a plain `str -> bytes` mapping: the shape the domain adapters expect."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> bytes:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(key.encode())
        return default if value is None else value

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else k for k in self.table)

    def __len__(self) -> int:
        return len(self.table)
