"""Kafka record batches (format v2) made whole from columns of keys and values, which
aiokafka's producer sends (`send_batch`) as it sends the batches it builds itself.

aiokafka's builder takes a record at a time, a Python call or two each (about 0.7 µs): batch
scoring captures millions of records, and the views' changelog writes a record per changed
key. Here the records' varints are numpy's, the records are joined by Arrow, and only each
batch's header and checksum are Python's work.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.util import calc_crc32c

from app.domain.blobs import joined

# Kafka's RecordBatch header (KIP-98): base offset, length, leader epoch, magic, CRC-32C,
# attributes, last offset delta, first and max timestamps, producer id, producer epoch,
# base sequence, record count.
HEADER = struct.Struct(">qiibIhiqqqhii")
CRC_AT = struct.calcsize(">qiib")
CHECKED_FROM = struct.calcsize(">qiibI")  # the CRC covers the attributes onwards
PRODUCER_AT = struct.calcsize(">qiibIhiqq")
PRODUCER = struct.Struct(">qhi")

Blobs: TypeAlias = "Sequence[bytes | None] | pa.Array"

# Kafka's codec ids (a batch's attributes, bits 0-2). Arrow writes these frames as Kafka
# reads them; not LZ4, whose frames Arrow writes with dependent blocks, which Kafka refuses
# ("Dependent block stream is unsupported", measured on Apache Kafka 4.1.1).
CODECS = {"gzip": 1, "snappy": 2, "zstd": 4}


class RecordBatch(BatchBuilder):  # type: ignore[misc]
    """A closed batch of records made elsewhere, for `producer.send_batch`.

    aiokafka's sender asks a batch for its bytes (`_build`), its size and record count, and
    an idempotent producer sets its id, epoch and first sequence in it: those are all this
    answers; it takes no record (`append` answers None to a closed batch)."""

    def __init__(self, buffer: bytearray, count: int) -> None:  # no record builder to make
        self._buffer = buffer
        self._relative_offset = count
        self._closed = True
        self._key_serializer = self._value_serializer = None

    def _set_producer_state(self, producer_id: int, producer_epoch: int, sequence: int) -> None:
        PRODUCER.pack_into(self._buffer, PRODUCER_AT, producer_id, producer_epoch, sequence)
        _seal(self._buffer)

    def _build(self) -> bytearray:
        return self._buffer

    def size(self) -> int:
        return len(self._buffer)


class PlainBatch(NamedTuple):
    """A batch's records framed, not yet compressed nor checksummed (`seal` does both)."""

    framed: memoryview
    records: int
    timestamp: int  # ms since the epoch, the batch's first and max timestamp


def record_batches(
    keys: Blobs,
    values: Blobs,
    batch_size: int,
    compression: str | None = None,
    units: Sequence[int] = (),
) -> list[RecordBatch]:
    """One partition's records, in order, in as few batches of at most `batch_size` bytes
    as hold them; a record larger than that goes in a batch of its own (as aiokafka's builder
    takes any first record), which the broker refuses, failing its ack, if the topic takes
    less. A None key or value is Kafka's null (a value's: a tombstone).

    `units` are the first records of runs that must not be split (ascending): a batch is
    cut only where one begins, unless a run alone is larger than a batch (`unit_fits`
    says which fit). Kafka appends a batch whole or not at all, so a run in one batch
    reaches the log whole or not at all.

    With `compression` (a name in `CODECS`) each batch's records are compressed, as a
    producer's are, where that makes the batch smaller: batches are still cut by their
    records' plain size, so none grows past `batch_size`."""
    return [seal(plain, compression) for plain in plain_batches(keys, values, batch_size, units)]


def plain_batches(
    keys: Blobs, values: Blobs, batch_size: int, units: Sequence[int] = ()
) -> list[PlainBatch]:
    """`record_batches`' batches before `seal`: framing is numpy's and Arrow's work, many
    short calls, best on the caller's thread; sealing is one long call a batch that lets go
    of the GIL, which another thread can do while this one goes on."""
    keys, values = _binary(keys), _binary(values)
    count = len(keys)
    if count != len(values):
        raise ValueError(f"{count} keys for {len(values)} values")
    if not count:
        return []
    key_sizes, value_sizes = _sizes(keys), _sizes(values)
    # A record: its length, then attributes and timestamp delta (0, 0), its offset delta in
    # its batch, key length and key, value length and value, header count (0); a null's
    # length is -1. Batches are cut by sizes with each record's offset in the whole run, no
    # smaller than its delta in its batch, so a batch is at most a few bytes short of full.
    fixed = 3 + _width(key_sizes) + _width(value_sizes)
    fixed += np.maximum(key_sizes, 0) + np.maximum(value_sizes, 0)
    sizes = _framed(fixed + _width(np.arange(count, dtype=np.int64)))
    firsts = _cuts(sizes, batch_size, np.asarray(units, dtype=np.int64))
    deltas = np.arange(count, dtype=np.int64)
    deltas -= np.repeat(firsts, np.diff(np.append(firsts, count)))
    body = fixed + _width(deltas)
    pieces = [_varints(body), b"\x00\x00", _varints(deltas), _varints(key_sizes), keys]
    records = joined([*pieces, _varints(value_sizes), values, b"\x00"])
    _, offsets, data = records.buffers()
    at = np.frombuffer(offsets, dtype=np.int32)[records.offset : records.offset + count + 1]
    now = int(time.time() * 1000)
    bounds = zip(firsts.tolist(), [*firsts[1:].tolist(), count], strict=True)
    return [
        PlainBatch(memoryview(data)[at[first] : at[last]], last - first, now)
        for first, last in bounds
    ]


def seal(plain: PlainBatch, compression: str | None = None) -> RecordBatch:
    """The batch as sent: its records compressed with `compression` where that makes them
    smaller, under a header with their CRC-32C."""
    payload, flags = plain.framed, 0
    if compression is not None:
        packed = pa.Codec(compression).compress(plain.framed, asbytes=True)
        if len(packed) < len(payload):
            payload, flags = packed, CODECS[compression]
    buffer = bytearray(HEADER.size) + payload
    n, now = plain.records, plain.timestamp
    HEADER.pack_into(
        buffer, 0, 0, len(buffer) - 12, -1, 2, 0, flags, n - 1, now, now, -1, -1, -1, n
    )
    _seal(buffer)
    return RecordBatch(buffer, n)


def _framed(body: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each record's size with its length's varint."""
    return body + _width(body)


def _cuts(
    sizes: np.ndarray[Any, np.dtype[np.int64]],
    batch_size: int,
    units: np.ndarray[Any, np.dtype[np.int64]],
) -> np.ndarray[Any, Any]:
    """The first record of each batch: records are added while the batch stays within
    `batch_size` bytes, header included, and a batch's first record always goes in. Where
    a unit begins inside the records that fit, the batch ends at the last such beginning."""
    ends = np.cumsum(sizes)
    firsts, first, count = [0], 0, len(sizes)
    while True:
        before = int(ends[first - 1]) if first else 0
        last = int(np.searchsorted(ends, before + batch_size - HEADER.size, side="right"))
        if last < count:
            # The last unit that begins after `first` and no later than `last`, if any.
            at = int(np.searchsorted(units, last, side="right")) - 1
            if at >= 0 and units[at] > first:
                last = int(units[at])
        first = max(first + 1, last)
        if first >= count:
            return np.array(firsts, dtype=np.int64)
        firsts.append(first)


# A record's framing beyond its key and value, at most: attributes, timestamp delta, and
# varints of its length, offset delta, key length and value length (under 2**27 each).
RECORD_FRAMING = 24


def unit_fits(items: Sequence[tuple[bytes | str, bytes | None]], batch_size: int) -> bool:
    """Whether `record_batches` puts these records, a unit, in one batch of `batch_size`.

    A key may be given as text, as it will be written in UTF-8: its size is then taken
    without encoding it (an ASCII string's is its length, known without a pass).
    """
    framed = sum(_utf8_size(key) + len(value or b"") for key, value in items)
    return framed + RECORD_FRAMING * len(items) + HEADER.size <= batch_size


def _utf8_size(key: bytes | str) -> int:
    if isinstance(key, bytes) or key.isascii():
        return len(key)
    return len(key.encode())


def _seal(buffer: bytearray) -> None:
    """The batch's CRC-32C, of everything from its attributes on."""
    struct.pack_into(">I", buffer, CRC_AT, calc_crc32c(memoryview(buffer)[CHECKED_FROM:]))


def _binary(blobs: Blobs) -> pa.Array:
    if isinstance(blobs, pa.ChunkedArray):
        blobs = blobs.combine_chunks()
    if isinstance(blobs, pa.Array):
        return blobs if blobs.type == pa.binary() else blobs.cast(pa.binary())
    return pa.array(blobs, pa.binary())


def _sizes(blobs: pa.Array) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each blob's length, -1 for a null."""
    lengths = pc.fill_null(pc.binary_length(blobs), -1)
    return lengths.to_numpy().astype(np.int64)  # type: ignore[no-any-return]


def _zigzag(values: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, Any]:
    return ((values << 1) ^ (values >> 63)).astype(np.uint64)


def _width(values: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The bytes of each value's zigzag varint: 7 bits a byte."""
    zigzag = _zigzag(values)
    widths = np.ones(len(values), dtype=np.int64)
    for k in range(1, 10):
        above = zigzag >= np.uint64(1 << (7 * k))
        if not above.any():
            break
        widths += above
    return widths


def _varints(values: np.ndarray[Any, np.dtype[np.int64]]) -> pa.Array:
    """Each value's zigzag varint, as a binary array."""
    zigzag, widths = _zigzag(values), _width(values)
    columns = int(widths.max())
    table = np.empty((len(values), columns), dtype=np.uint8)
    for j in range(columns):
        more = (widths > j + 1).astype(np.uint8) << np.uint8(7)
        table[:, j] = (zigzag >> np.uint64(7 * j)).astype(np.uint8) & np.uint8(0x7F) | more
    data = table[np.arange(columns) < widths[:, None]]  # row after row, each its own width
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(widths, out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.binary(), len(values), buffers)
