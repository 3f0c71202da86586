"""One million events through a worker, its resident memory sampled as they are folded.

State lives in RocksDB and the changelog, so the worker's RSS should level off once its
caches are warm, not grow with the events. Predictions and their tags are published a chunk
at a time, never far ahead of the worker, so that the curve follows the fold, not a backlog.
Prints the curve, the RSS at the end against the RSS at the halfway mark, and the growth
over the second half fitted through all its samples.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from app.topics import PREDICTIONS, TAGS
from bench.common import machine_line, processed
from tests.services import WorkerProcess, stack_settings, start_stack

CHUNK = 10_000  # events per published chunk
AHEAD = 40_000  # at most this many events published and not yet folded
START = datetime(2026, 11, 27, tzinfo=UTC)


def events(start: int, count: int) -> list[tuple[str, bytes, bytes]]:
    """Predictions `start..start+count/2` and a tag for each: (topic, key, value)."""
    out = []
    for i in range(start, start + count // 2):
        event_id = str(uuid.UUID(int=i + 1, version=4))
        at = START + timedelta(seconds=i)
        prediction = {
            "schema_version": 1,
            "event_id": event_id,
            "model": "flight-delay",
            "model_version": str(1 + i % 3),
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "features": {"distance": 100 + i % 2900, "carrier": ("UA", "AA", "DL")[i % 3]},
            "prediction": {"value": float(i % 97)},
        }
        tag = {
            "schema_version": 1,
            "tag_id": str(uuid.UUID(int=(1 << 100) + i, version=4)),
            "event_id": event_id,
            "label": float(i % 89),
            "datasets": ["flights-train"] if i % 5 else ["flights-eval"],
            "source": "arrivals",
            "tagged_at": (at + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        }
        key = event_id.encode()
        out.append((PREDICTIONS, key, orjson.dumps(prediction)))
        out.append((TAGS, key, orjson.dumps(tag)))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def main(total: int, every: int, partitions: int = 8, views_mb: int | None = None) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-memory-"))
    settings = stack_settings(root / "data", partitions=partitions)
    if views_mb is not None:
        settings = settings.with_(views_memory_mb=views_mb)
    stack = start_stack(settings)
    worker = WorkerProcess(settings, root / "worker.log").start()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=10, max_batch_size=512 * 1024
    )
    curve: list[tuple[int, float]] = []
    started = time.perf_counter()
    try:
        worker.wait_ready()
        assert worker.process is not None
        pid = worker.process.pid
        curve.append((0, rss_mb(pid)))
        await producer.start()
        published, mark = 0, every
        deadline = time.monotonic() + 3600
        while True:
            done = processed(worker)
            while done >= mark:
                curve.append((mark, rss_mb(pid)))
                print(f"{mark:>9,} events  RSS {curve[-1][1]:7.1f} MB", flush=True)
                mark += every
            if done >= total:
                break
            if published < total and published - done < AHEAD:
                sends = [
                    await producer.send(topic, value, key=key)
                    for topic, key, value in events(published // 2, CHUNK)
                ]
                await asyncio.gather(*sends)
                published += CHUNK
                continue
            assert time.monotonic() < deadline, worker.log_tail()
            assert worker.process.poll() is None, worker.log_tail()
            await asyncio.sleep(0.5)
    finally:
        await producer.stop()
        worker.stop()
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - started
    half = min(curve, key=lambda point: abs(point[0] - total // 2))
    print(machine_line())
    print(
        f"events: {total:,} (predictions and one tag each) in {seconds:,.0f} s, "
        f"{partitions} partitions, views memory {settings.views_memory_mb} MiB"
    )
    print(f"RSS at {half[0]:,}: {half[1]:.1f} MB; at {curve[-1][0]:,}: {curve[-1][1]:.1f} MB")
    print(f"ratio (RSS at the end / RSS at half way): {curve[-1][1] / half[1]:.3f}")
    later = [point for point in curve if point[0] >= half[0]]
    if len(later) >= 3:
        # One sample swings by tens of MB as RocksDB's memtables fill and flush; a line
        # through every sample of the second half says how fast RSS grows, if it does.
        print(f"growth over the second half, fitted: {slope(later) * 1e6:+.1f} MB a million events")


def slope(points: list[tuple[int, float]]) -> float:
    """The least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50_000, help="sample RSS every N events")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--views-memory-mb", type=int, help="the worker's MODELVIEW_VIEWS_MEMORY_MB"
    )
    args = parser.parse_args()
    asyncio.run(main(args.events, args.every, args.partitions, args.views_memory_mb))
