"""The worker's heap: large blocks get mappings of their own, however large the last freed."""

from __future__ import annotations

import ctypes

import pytest

from app.heap import fix_mmap_threshold


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mapped_blocks() -> int:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    return int(mallinfo2().hblks)


def test_a_block_of_a_megabyte_is_mapped_after_a_larger_one_was_freed() -> None:
    if not fix_mmap_threshold() or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("no glibc here")
    large = bytearray(8 << 20)
    del large  # glibc alone would now serve blocks below 8 MiB from the heap
    before = mapped_blocks()
    block = bytearray(1 << 20)
    assert mapped_blocks() == before + 1
    del block
    assert mapped_blocks() == before  # unmapped: back to the system
