"""Records to partitions, many at once: the producers' default partitioner (Kafka's
murmur2) over many keys.

Batch scoring partitions tens of thousands of keys per batch; aiokafka's murmur2 is pure
Python, one key at a time (about 5 µs a key). Here keys of one length are hashed together as
numpy words: the same numbers, so every record lands where `producer.send` would put it and
a tag still finds its prediction's partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEED = np.uint32(0x9747B28C)
M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes] | pa.Array) -> np.ndarray:
    """Kafka's murmur2 of each key, as unsigned 32-bit numbers, in the keys' order."""
    if isinstance(keys, pa.Array):
        if keys.null_count:
            raise ValueError("a null key has no partition of its own")
        lengths = pc.binary_length(keys)
        if len(keys) and pc.min(lengths) == pc.max(lengths):  # read where Arrow holds them
            length, (_, offsets, data) = lengths[0].as_py(), keys.buffers()
            start = int(np.frombuffer(offsets, dtype=np.int32)[keys.offset])
            rows = np.frombuffer(data, dtype=np.uint8)[start : start + length * len(keys)]
            return _same_length(rows.reshape(len(keys), length), length)
        keys = keys.to_pylist()
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


def partitions(keys: Sequence[bytes] | pa.Array, count: int) -> np.ndarray:
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
