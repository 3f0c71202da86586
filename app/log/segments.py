"""The segment format: a topic-partition's records as one Parquet file (encode, decode).
Where segments are kept is `app.log.segment_store`.

Columns: `partition`, `offset`, `timestamp` (the Kafka timestamp, UTC), `key` and `value`
(the record's exact bytes, valid or not). pandas, pyarrow or DuckDB read them as they are.
"""

from __future__ import annotations

import io
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import TypeAlias, overload

import pyarrow as pa
import pyarrow.parquet as pq

from app.domain.log_layout import LogRecord

SCHEMA = pa.schema(
    [
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
    ],
    metadata={b"modelview.format": b"1"},
)


def to_parquet(table: pa.Table, use_dictionary: bool | list[str] = True) -> bytes:
    """A table as one zstd Parquet object, the format of every file modelview writes to S3.
    `use_dictionary`: the columns worth a dictionary (all, by default)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=use_dictionary)
    return buffer.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


# A column of keys or values: Python bytes, or (read from a segment, until a row needs
# them) the Arrow array itself.
Blobs: TypeAlias = "list[bytes | None] | pa.ChunkedArray"


class Records(Sequence[LogRecord]):
    """One topic-partition's records as columns, in offset order: a row becomes a `LogRecord`
    only when it is asked for.

    Segments are written and read a column at a time, so a flush or a replay costs a few
    C-level conversions per batch rather than Python objects per record. A decoded segment
    keeps its keys and values in Arrow until a row is read: a replay that skips, slices or
    counts converts nothing. Appending (the flusher's buffer) and slicing keep the columns.
    """

    __slots__ = ("_keys", "_values", "offsets", "partition", "timestamps", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offsets: list[int] | None = None,
        timestamps: list[int] | None = None,
        keys: Blobs | None = None,
        values: Blobs | None = None,
    ) -> None:
        self.topic, self.partition = topic, partition
        self.offsets = offsets if offsets is not None else []
        self.timestamps = timestamps if timestamps is not None else []
        self._keys: Blobs = keys if keys is not None else []
        self._values: Blobs = values if values is not None else []

    @property
    def keys(self) -> list[bytes | None]:
        if not isinstance(self._keys, list):
            self._keys = _pylist(self._keys)
        return self._keys

    @property
    def values(self) -> list[bytes | None]:
        if not isinstance(self._values, list):
            self._values = _pylist(self._values)
        return self._values

    def append(
        self, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None
    ) -> None:
        self.offsets.append(offset)
        self.timestamps.append(timestamp_ms)
        self.keys.append(key)
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, index: int) -> LogRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Records: ...

    def __getitem__(self, index: int | slice) -> LogRecord | Records:
        if isinstance(index, slice):
            return Records(
                self.topic,
                self.partition,
                self.offsets[index],
                self.timestamps[index],
                _sliced(self._keys, index),
                _sliced(self._values, index),
            )
        return LogRecord(
            self.topic,
            self.partition,
            self.offsets[index],
            self.timestamps[index],
            self.keys[index],
            self.values[index],
        )

    def __iter__(self) -> Iterator[LogRecord]:
        return map(
            LogRecord,
            repeat(self.topic),
            repeat(self.partition),
            self.offsets,
            self.timestamps,
            self.keys,
            self.values,
        )

    def between(self, start: int, stop: int | None = None) -> Records:
        """The records with `start <= offset < stop`."""
        first = bisect_left(self.offsets, start)
        last = len(self) if stop is None else bisect_left(self.offsets, stop)
        return self if (first, last) == (0, len(self)) else self[first:last]

    def drop(self, count: int) -> None:
        """Forget the first `count` records (flushed)."""
        for column in (self.offsets, self.timestamps, self.keys, self.values):
            del column[:count]

    def arrow_blobs(self) -> tuple[pa.Array | pa.ChunkedArray, pa.Array | pa.ChunkedArray]:
        """The keys and values as Arrow, converting only what is in Python."""
        return _arrow(self._keys), _arrow(self._values)


def _pylist(column: pa.ChunkedArray) -> list[bytes | None]:
    # numpy's tolist is C; pyarrow's to_pylist builds a scalar per row.
    out: list[bytes | None] = column.to_numpy().tolist()
    return out


def _sliced(column: Blobs, index: slice) -> Blobs:
    if isinstance(column, list):
        return column[index]
    start, stop, step = index.indices(len(column))
    assert step == 1, "records are sliced in runs"
    return column.slice(start, max(0, stop - start))


def _arrow(column: Blobs) -> pa.Array | pa.ChunkedArray:
    return pa.array(column, pa.binary()) if isinstance(column, list) else column


def encode(records: Sequence[LogRecord]) -> bytes:
    if not isinstance(records, Records):
        columns = Records("", 0)
        for r in records:
            columns.append(r.offset, r.timestamp_ms, r.key, r.value)
            columns.partition = r.partition
        records = columns
    table = pa.Table.from_arrays(
        [
            pa.array([records.partition] * len(records), pa.int32()),
            pa.array(records.offsets, pa.int64()),
            pa.array(records.timestamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            *records.arrow_blobs(),
        ],
        schema=SCHEMA,
    )
    return to_parquet(table)


def warm_up() -> None:
    """Pay pyarrow's first-use imports (pandas among them) now, not in the middle of ingestion.

    Measured: 0.31-0.33 s for the first encode in a fresh process (0.6 ms after), longer
    under load, with the GIL held and the ingest loop waiting. It buys no throughput
    (bench.ingest shows none); it moves that stall from mid-stream to start-up.
    """
    encode([])


def decode(topic: str, data: bytes) -> Records:
    """A segment's records, a column at a time; keys and values stay in Arrow until read."""
    table = from_parquet(data)
    partitions = table.column("partition")
    return Records(
        topic,
        partitions[0].as_py() if len(partitions) else 0,
        table.column("offset").to_numpy().tolist(),
        table.column("timestamp").cast(pa.int64()).to_numpy().tolist(),
        table.column("key"),
        table.column("value"),
    )
