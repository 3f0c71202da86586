"""Records to partitions, many at once: the producers' default partitioner (Kafka's
murmur2) over many keys, and a partition's records sent as whole record batches.

Batch scoring partitions tens of thousands of keys per batch; aiokafka's murmur2 is pure
Python, one key at a time (about 5 µs a key). Here keys of one length are hashed together as
numpy words: the same numbers, so every record lands where `producer.send` would put it and
a tag still finds its prediction's partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer

SEED = np.uint32(0x9747B28C)
M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes]) -> np.ndarray:
    """Kafka's murmur2 of each key, as unsigned 32-bit numbers, in the keys' order."""
    lengths = set(map(len, keys))
    if len(lengths) == 1:  # ids, the usual keys: one array, no loop over the keys
        (length,) = lengths
        data = np.frombuffer(b"".join(keys), dtype=np.uint8)
        return _same_length(data.reshape(len(keys), length), length)
    out = np.empty(len(keys), dtype=np.uint32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        by_length[len(key)].append(i)
    for length, where in by_length.items():
        data = np.frombuffer(b"".join(keys[i] for i in where), dtype=np.uint8)
        out[where] = _same_length(data.reshape(len(where), length), length)
    return out


def partitions(keys: Sequence[bytes], count: int) -> np.ndarray:
    """The partition of each key among `count`, as `producer.send` picks it."""
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(count)


def _same_length(rows: np.ndarray, length: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = np.full(len(rows), SEED ^ np.uint32(length), dtype=np.uint32)
        whole = length // 4 * 4
        words = np.ascontiguousarray(rows[:, :whole]).view("<u4").astype(np.uint32)
        for j in range(words.shape[1]):
            k = words[:, j] * M
            k ^= k >> np.uint32(24)
            k *= M
            h *= M
            h ^= k
        tail = length - whole
        if tail:
            for t in range(tail - 1, -1, -1):  # the Java switch falls through from the top
                h ^= rows[:, whole + t].astype(np.uint32) << np.uint32(8 * t)
            h *= M
        h ^= h >> np.uint32(13)
        h *= M
        h ^= h >> np.uint32(15)
    return h


def record_batches(
    producer: AIOKafkaProducer, records: Iterable[tuple[bytes, bytes | None]]
) -> list[Any]:
    """One partition's records, in order, in as few record batches as hold them, each closed
    (a batch left open lingers `linger_ms` before it may go, and the partition's next batch
    waits for it).

    A record is never dropped unsaid: one larger than the batch size goes in a batch of its
    own (aiokafka's take any first record), which the broker refuses, failing its ack, if the
    topic takes less; a producer that would not take it at all raises ValueError here."""
    built = [producer.create_batch()]
    for key, value in records:
        if built[-1].append(key=key, value=value, timestamp=None) is None:
            if built[-1].record_count():  # full (and closed by that): the record starts the next
                built.append(producer.create_batch())
            if built[-1].append(key=key, value=value, timestamp=None) is None:
                size = len(key) + len(value or b"")
                raise ValueError(f"record {key[:64]!r} of {size} bytes exceeds the batch size")
    for batch in built:
        batch.close()
    return [batch for batch in built if batch.record_count()]
