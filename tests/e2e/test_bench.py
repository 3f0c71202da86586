"""Every benchmark, run once at a tiny size, so none rots: it must finish and print its ratio.

No timing is asserted: the numbers of a tiny run mean nothing. `bash scripts/bench.sh` runs
them at their real sizes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.services import ROOT

pytestmark = pytest.mark.e2e

TINY = {
    # One Quix Streams run, not two: each takes ~15 s to start, whatever the size.
    "ingest": ["--predictions", "300", "--default-peer-only"],
    "ceiling": ["--predictions", "300"],
    "scale": ["--predictions", "300"],
    "fold": ["--predictions", "300"],
    "cold": ["--predictions", "500"],
    "training": ["--predictions", "400"],
    "serving": ["--requests", "40", "--rounds", "1", "--events", "400", "--rows", "400"],
    "memory": ["--events", "3000", "--every", "1000"],
    "models": ["--days", "5", "--rows", "600"],
}


def test_every_benchmark_is_listed_here() -> None:
    found = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"__init__", "common", "quix"}
    assert found == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *TINY[name]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ratio" in done.stdout, done.stdout[-3000:]
