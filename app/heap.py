"""glibc's heap, kept from growing with the large buffers a worker goes through."""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def fix_mmap_threshold() -> bool:
    """Serve every allocation of 128 KiB or more by a mapping of its own, unmapped on free.

    A worker cycles through large blocks: fetch responses of megabytes, the changelog's
    record batches, RocksDB's memtable arenas. glibc raises its mmap threshold to the size
    of each such block freed (up to 32 MiB), and from then on serves them from the heap,
    where what is freed between live blocks stays resident. After bench.memory's million
    events the worker's RSS was 564 and 531 MB; with the threshold fixed, 438, 430 and
    422 MB, for about 0.55 more minor page faults a record (BENCHMARKS.md, 2026-12-06).
    Returns whether it was set: False where there is no glibc `mallopt`.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
