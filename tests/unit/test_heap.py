"""The worker's heap: large blocks get mappings of their own, however large the last freed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.services import ROOT

# Run in a fresh interpreter: a busy process's heap may hold a free chunk that fits the
# block, which glibc rightly reuses, mapped or not.
PROBE = """
import ctypes
from app.heap import fix_mmap_threshold


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]


libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2") or {fix} and not fix_mmap_threshold():
    print("no glibc")
    raise SystemExit
libc.mallinfo2.restype = MallInfo2
large = bytearray(8 << 20)
del large  # glibc alone would now serve blocks below 8 MiB from the heap
before = libc.mallinfo2().hblks
block = bytearray(3 << 20)
mapped = libc.mallinfo2().hblks - before
del block
print(mapped, libc.mallinfo2().hblks - before)
"""


def probe(fix: bool) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(fix=fix)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_block_of_megabytes_is_mapped_and_unmapped_after_a_larger_one_was_freed() -> None:
    fixed = probe(fix=True)
    if fixed == "no glibc":
        pytest.skip("glibc's malloc is not this process's")
    assert fixed == "1 0"  # its own mapping, and back to the system once freed
    assert probe(fix=False) == "0 0"  # glibc alone: from the heap, where it stays
