"""The vectorized partitioner puts every key where the producer's own murmur2 does."""

from __future__ import annotations

import random
import uuid

from app.partitioning import murmur2, partitions
from app.topic_admin import key_partition


def test_every_key_lands_where_the_producers_partitioner_puts_it() -> None:
    rng = random.Random(3)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(500)]
    keys += [rng.randbytes(n) for n in range(0, 41) for _ in range(5)]  # every tail length
    for count in (1, 4, 7, 32):
        assert partitions(keys, count).tolist() == [key_partition(k, count) for k in keys]


def test_known_values_of_kafkas_murmur2() -> None:
    # From Kafka's own UtilsTest.testMurmur2 (signed 32-bit there).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    got = murmur2(list(cases)).astype("int64")
    assert [int(v) - (1 << 32) if v >= 1 << 31 else int(v) for v in got] == list(cases.values())
