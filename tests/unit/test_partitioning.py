"""The vectorized partitioner puts every key where the producer's own murmur2 does, and
a partition's records go in whole, valid Kafka record batches."""

from __future__ import annotations

import random
import uuid

import pyarrow as pa
import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from app.partitioning import murmur2, partitions
from app.record_batch import CODECS, HEADER, RECORD_FRAMING, record_batches, unit_fits
from app.topic_admin import key_partition


def test_every_key_lands_where_the_producers_partitioner_puts_it() -> None:
    rng = random.Random(3)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(500)]
    mixed = keys + [rng.randbytes(n) for n in range(0, 41) for _ in range(5)]  # every tail
    # Keys of one length (ids, the usual) are hashed as one array; of many, by length.
    for some in (keys, mixed, [b""], [rng.randbytes(7)] * 3):
        for count in (1, 4, 7, 32):
            assert partitions(some, count).tolist() == [key_partition(k, count) for k in some]


def test_known_values_of_kafkas_murmur2() -> None:
    # From Kafka's own UtilsTest.testMurmur2 (signed 32-bit there).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    got = murmur2(list(cases)).astype("int64")
    assert [int(v) - (1 << 32) if v >= 1 << 31 else int(v) for v in got] == list(cases.values())


@pytest.mark.parametrize("compression", [None, "zstd", "gzip", "snappy"])
def test_record_batches_hold_every_record_in_order_in_valid_kafka_batches(
    compression: str | None,
) -> None:
    rng = random.Random(5)
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"%036d" % i, rng.randbytes(rng.randint(0, 600))) for i in range(2_000)
    ]
    records.insert(700, (b"big", rng.randbytes(40_000)))  # larger than a batch: one of its own
    records.insert(900, (b"gone", None))  # a tombstone
    records.insert(1100, (None, b"no key"))
    # Offset deltas of 64 and more take two bytes: a run that long in one batch.
    records += [(b"k", b"") for _ in range(300)]
    built = record_batches([k for k, _ in records], [v for _, v in records], 16_384, compression)
    found: list[tuple[bytes | None, bytes | None]] = []
    for batch in built:
        decoded = DefaultRecordBatch(bytes(batch._build()))
        assert decoded.validate_crc()
        inside = list(decoded)
        assert [r.offset for r in inside] == list(range(len(inside)))  # relative offsets
        assert batch.record_count() == len(inside)
        assert len(inside) == 1 or batch.size() <= 16_384
        found += [(r.key, r.value) for r in inside]
    assert found == records
    assert [len(b._build()) > 16_384 for b in built].count(True) == 1
    assert record_batches([], [], 16_384) == []


def test_compressed_batches_decode_to_their_records_and_random_bytes_stay_plain() -> None:
    rng = random.Random(8)
    text = [
        (b"ex/%d" % i, b'{"features":{"x":%d,"y":"abc"}}' % rng.randint(0, 99)) for i in range(3000)
    ]
    noise = [(b"n%d" % i, rng.randbytes(300)) for i in range(200)]
    for records, codec in ((text, CODECS["zstd"]), (noise, 0)):
        keys, values = [k for k, _ in records], [v for _, v in records]
        plain = record_batches(keys, values, 16_384)
        packed = record_batches(keys, values, 16_384, "zstd")
        assert [b.record_count() for b in packed] == [b.record_count() for b in plain]
        decoded = [DefaultRecordBatch(bytes(b._build())) for b in packed]
        assert {d.compression_type for d in decoded} == {codec}  # plain where not smaller
        assert all(d.validate_crc() for d in decoded)
        assert [(r.key, r.value) for d in decoded for r in d] == records
        if codec:
            assert sum(b.size() for b in packed) < sum(b.size() for b in plain) / 3


@pytest.mark.parametrize("seed", range(5))
def test_a_unit_that_fits_a_batch_is_never_split_and_one_that_does_not_is(seed: int) -> None:
    rng = random.Random(seed)
    limit = 4_096
    units: list[list[tuple[bytes, bytes | None]]] = []
    for u in range(60):
        size = rng.choice([1, 3, 10, 80])  # units of 80 exceed a batch
        units.append(
            [
                (b"u%d/%d" % (u, i), rng.randbytes(rng.randint(0, 200)) if i % 7 else None)
                for i in range(size)
            ]
        )
    records = [record for unit in units for record in unit]
    starts, at = [], 0
    for unit in units:
        starts.append(at)
        at += len(unit)
    built = record_batches(
        [k for k, _ in records], [v for _, v in records], limit, "zstd", units=starts
    )
    decoded = [[(r.key, r.value) for r in DefaultRecordBatch(bytes(b._build()))] for b in built]
    assert [record for batch in decoded for record in batch] == records
    assert all(b.size() <= limit for b in built)
    batch_of = {key: n for n, batch in enumerate(decoded) for key, _ in batch}
    fits = [unit_fits(unit, limit) for unit in units]
    assert True in fits and False in fits
    for unit, whole in zip(units, fits, strict=True):
        spread = {batch_of[key] for key, _ in unit}
        if whole:
            assert len(spread) == 1
        if sum(len(k) + len(v or b"") for k, v in unit) > limit:
            assert not whole and len(spread) > 1
    # Units share batches: not a batch each.
    assert any(len({k.split(b"/")[0] for k, _ in batch if k}) > 1 for batch in decoded)


def test_a_unit_with_text_keys_fits_exactly_when_its_utf8_keys_do() -> None:
    value = b"v" * 100
    for key in ("example/abc", "example/\u00e9t\u00e9-\u65e5\u672c", "\U0001f600"):
        items = [(key, value), (key, None)]
        encoded = [(key.encode(), value), (key.encode(), None)]
        exact = 2 * len(key.encode()) + 100 + 2 * RECORD_FRAMING + HEADER.size
        for limit in (exact - 1, exact):
            assert unit_fits(items, limit) == unit_fits(encoded, limit) == (limit == exact)


def test_murmur2_of_an_arrow_column_is_that_of_its_keys() -> None:
    rng = random.Random(6)
    same = [rng.randbytes(36) for _ in range(500)]
    mixed = [rng.randbytes(rng.randint(1, 40)) for _ in range(500)]
    for keys in (same, mixed):
        column = pa.array(keys, pa.binary())
        assert murmur2(column).tolist() == murmur2(keys).tolist()
        assert murmur2(column.slice(7, 100)).tolist() == murmur2(keys[7:107]).tolist()
