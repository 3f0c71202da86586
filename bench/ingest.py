"""End-to-end ingestion (publish -> worker views caught up) next to raw aiokafka consume, same broker, same run.

Both sides read the same records from the same topics on a fresh local stack, so the ratio
holds however busy the machine is; absolute numbers drift and are printed for context only.
The worker's main thread runs the fold, so its CPU a record is what the code costs, and its
busy share of the span is what waiting (for the broker, for the loop's turns) costs: a
change to either shows there more steadily than in the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.client import KafkaPublisher
from app.topics import PREDICTIONS, TAGS
from bench import quix
from bench.common import (
    cpu_seconds,
    cpu_split,
    fold_span,
    machine_cpu,
    machine_line,
    page_faults,
    py_spy,
    stop_spy,
    wait_processed,
)
from tests.e2e.workload import build
from tests.services import WorkerProcess, stack_settings, start_stack

RAW_READS = 3  # the baseline's reads of the backlog, of which the median is kept


async def publish(bootstrap: str, items: list[tuple[str, bytes, bytes]]) -> None:
    async with KafkaPublisher(bootstrap, validate=False) as kafka:
        for start in range(0, len(items), 2000):
            chunk = items[start : start + 2000]
            # A chunk's predictions are in the log before its tags, as they were when each
            # record waited for its own ack (which took minutes: a linger a record).
            for topic in (PREDICTIONS, TAGS):
                records = [(key, raw) for t, key, raw in chunk if t == topic]
                await kafka.send_records(topic, records)


async def raw_consume(bootstrap: str, partitions: int, total: int, decode: bool = True) -> float:
    """Seconds for a plain aiokafka consumer to read (and JSON-decode) every record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(
            [TopicPartition(t, p) for t in (PREDICTIONS, TAGS) for p in range(partitions)]
        )
        await consumer.seek_to_beginning()
        seen, started = 0, time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values() if decode else ():
                for message in messages:
                    # The 1% malformed: a real reader would set them aside too.
                    with contextlib.suppress(orjson.JSONDecodeError):
                        orjson.loads(message.value)
            seen += sum(len(messages) for messages in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def main(
    predictions: int,
    profile: str | None = None,
    peers_too: bool = True,
    batch_size: int | None = None,
    restart_safe_peer: bool = True,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8)
    if batch_size is not None:
        settings = settings.with_(batch_size=batch_size)
    stack = start_stack(settings)
    worker = WorkerProcess(settings, root / "worker.log")
    try:
        # The worker creates the topics with the right partition count; then it is stopped so
        # that the records wait in the log and both readers start from the same backlog.
        worker.start().wait_ready()
        quix.set_retention(settings.bootstrap_servers)
        assert worker.stop() == 0
        workload = build(predictions, seed=11)
        items = [
            (PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw) for i in workload.items
        ]
        await publish(settings.bootstrap_servers, items)
        total = len(items)
        # Three reads, the median kept: one read takes about 0.3 s, and varied by a quarter
        # from run to run, which every ratio carried (2026-12-07).
        raw_reads = [
            await raw_consume(settings.bootstrap_servers, settings.partitions, total)
            for _ in range(RAW_READS)
        ]
        raw_seconds = statistics.median(raw_reads)
        worker = WorkerProcess(settings, root / "worker-2.log").start()
        worker.wait_ready()
        assert worker.process is not None
        pid = worker.process.pid
        spy = py_spy(pid, profile) if profile else None
        # The stopped worker committed nothing of the backlog: the new one folds all of it.
        cpu_before, machine_before = cpu_seconds(pid), machine_cpu()
        faults_before = page_faults(pid)
        waited = wait_processed(worker, total)
        # The worker's own clock, from its assignment to its last fold: its first fetch is
        # often folded before `wait_ready` returns, and timing from there counted up to a
        # fetch (8,000 records) as free (2026-12-07).
        seconds, to_first, main_cpu = fold_span(worker)
        native = (worker.health() or {}).get("native") or {}
        cpu = cpu_seconds(pid) - cpu_before
        faults = page_faults(pid) - faults_before
        machine = cpu_split(machine_before, machine_cpu())
        if spy is not None:
            stop_spy(spy)
        worker.stop()
        variants = [("default producer", False)]
        if restart_safe_peer:
            variants.append(("batch.num.messages=1", True))
        peers = (
            {
                name: quix.run(settings.bootstrap_servers, total, root / f"quix-{name}", one)
                for name, one in variants
            }
            if peers_too
            else {}
        )
    finally:
        worker.stop()
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    raw_rate, rate = total / raw_seconds, total / seconds
    print(machine_line())
    print(
        f"records: {total} ({predictions} predictions, tags, 5% duplicates, 1% malformed), 8 partitions, "
        f"batch size {settings.batch_size}"
    )
    reads = ", ".join(f"{total / r:,.0f}" for r in raw_reads)
    print(f"raw aiokafka consume + orjson.loads: {raw_rate:,.0f} records/s (median of {reads})")
    print(f"modelview worker, backlog to views:  {rate:,.0f} records/s (assignment to last fold)")
    print(f"  from ready to the last fold, as measured before 2026-12-07: {total / waited:,.0f}")
    print(f"ratio (modelview / raw consume): {rate / raw_rate:.4f}")
    compiled = native.get("compiled")
    print(
        f"  its fold: {'compiled' if compiled else 'Python'} ({native.get('reason') or 'app.native'})"
    )
    print(f"  of the worker's {seconds:.2f} s, before its first fold began: {to_first:.2f} s")
    print(
        f"  its main thread's CPU over them: {main_cpu:.2f} s, "
        f"{main_cpu / total * 1e6:.0f} µs a record, busy {main_cpu / seconds:.0%} of the span"
    )
    # CPU and faults are counted from ready, as the old rate was: a fetch folded before
    # then is left out of them, so a record's share reads low by as much.
    print(f"  the worker's CPU meanwhile: {cpu:.2f} s, {cpu / total * 1e6:.0f} µs a record")
    print(f"  the worker's minor page faults meanwhile: {faults:,}, {faults / total:.2f} a record")
    print(f"  the machine's CPU meanwhile, {waited:.2f} s on {os.cpu_count()} cores: {machine}")
    for name, (quix_seconds, bad) in peers.items():
        quix_rate = total / quix_seconds
        print(f"Quix Streams 3.28, {name}: {quix_rate:,.0f} records/s ({bad} malformed dropped)")
        print(f"  ratio (Quix / raw consume): {quix_rate / raw_rate:.4f}")
        print(f"  ratio (modelview / Quix):   {rate / quix_rate:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=20_000)
    parser.add_argument("--profile", help="write py-spy's collapsed stacks of the worker here")
    parser.add_argument("--batch-size", type=int, help="the worker's MODELVIEW_BATCH_SIZE")
    parser.add_argument("--no-peers", action="store_true", help="skip Quix Streams")
    parser.add_argument(
        "--default-peer-only",
        action="store_true",
        help="run Quix Streams with its default producer only (each run starts in ~15 s)",
    )
    args = parser.parse_args()
    asyncio.run(
        main(
            args.predictions,
            args.profile,
            not args.no_peers,
            args.batch_size,
            restart_safe_peer=not args.default_peer_only,
        )
    )
