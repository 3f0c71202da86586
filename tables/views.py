"""The `views` table: examples, per-partition aggregates and their cursors, in one changelog.

One table rather than three because a batch's writes must reach one changelog partition in
order: that is what lets `app.adapters.txn` undo a batch a crash cut short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

import faust

from app.settings import Settings

TABLE_NAME = "views"


class ViewsTable(faust.Table[bytes, bytes]):
    """A table that can wait until every write so far is in its changelog.

    Faust's own flush before an offset commit can return with a write still on its way to
    the producer; the futures of the writes themselves cannot.
    """

    _unacked: list[asyncio.Future[Any]]

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)
        self.__dict__.setdefault("_unacked", []).append(future)
        return future

    async def wait_changelog(self) -> None:
        pending, self._unacked = self.__dict__.get("_unacked", []), []
        if pending:
            await asyncio.gather(*pending)


def define(app: faust.App, settings: Settings) -> ViewsTable:
    table = ViewsTable(
        app,
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
