"""One worker against two on the same backlog, same broker, same run: the rate of scaling out.

Each side is a fresh consumer group with its own tables (its own app id), so both fold the
whole backlog from the log's start. A rate counts what is folded after every worker is
ready, so start-up and the first rebalance are left out of both. On a 2-core machine two
workers and the broker share the cores: the ratio says what a second worker buys there,
not on a machine with a core each.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from app.settings import Settings
from app.topics import PREDICTIONS, TAGS
from bench.common import machine_line
from bench.ingest import publish
from tests.e2e.workload import build
from tests.services import (
    WorkerProcess,
    member_settings,
    stack_settings,
    start_stack,
    wait_cluster_ready,
)


def folded(members: list[WorkerProcess]) -> int:
    """Log records in the views, counted once: the sum of each partition's next offset, as
    its active owner reports it (a counter of processed records would count again what a
    worker re-reads after a rebalance)."""
    positions: dict[tuple[str, int], int] = {}
    for member in members:
        for topic, parts in ((member.health() or {}).get("positions") or {}).items():
            for p, at in parts.items():
                positions[(topic, int(p))] = max(at, positions.get((topic, int(p)), 0))
    return sum(positions.values())


def fold_rate(settings: Settings, workers: int, total: int, root: Path) -> tuple[float, bool]:
    """Records per second the cluster folds once every worker is ready, and True; or, if the
    backlog was all folded before then (a smoke run's tiny one can be), the rate from the
    workers' start, start-up included, and False."""
    begun = time.perf_counter()
    members = [
        WorkerProcess(s, root / f"{settings.app_id}-{i}.log").start()
        for i, s in enumerate(member_settings(settings, workers))
    ]
    try:
        wait_cluster_ready(members, within=300)
        started, before = time.perf_counter(), folded(members)
        deadline = started + 900
        while (done := folded(members)) < total:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{done} of {total} folded in 900 s")
            time.sleep(0.05)
        if before >= total:
            return total / (time.perf_counter() - begun), False
        return (done - before) / (time.perf_counter() - started), True
    finally:
        for member in members:
            member.stop()


async def main(predictions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8)
    stack = start_stack(settings)  # creates the contract topics, 8 partitions each
    try:
        workload = build(predictions, seed=17)
        items = [
            (PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw) for i in workload.items
        ]
        await publish(settings.bootstrap_servers, items)
        total = len(items)
        one, one_ready = fold_rate(settings.with_(app_id="bench-one"), 1, total, root)
        two, two_ready = fold_rate(settings.with_(app_id="bench-two"), 2, total, root)
    finally:
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    print(machine_line())
    print(f"broker: {settings.broker}; records: {total}; 8 partitions")
    if not (one_ready and two_ready):
        print("the backlog was folded before the workers were all ready: start-up included")
    print(f"one worker:  {one:,.0f} records/s")
    print(f"two workers: {two:,.0f} records/s")
    print(f"ratio (two / one): {two / one:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.predictions))
