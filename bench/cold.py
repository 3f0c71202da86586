"""Cold segments: flush MB/s next to raw consume plus put_object of the same bytes, and
replay records/s next to a raw Parquet read of the same objects; one fresh local stack.

Flush is the flusher itself (Kafka fetch, Parquet encode, put) on a backlog; replay is the
replay reader (list, get, decode to records, then the Kafka tail, empty here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from aiokafka import AIOKafkaProducer

from app.log.flusher import Flusher
from app.log.replay import consumer_for, read_partition
from app.log.segment_store import segment_store
from app.s3 import s3_client
from app.topic_admin import ensure_topics
from app.topics import LOGGED, PREDICTIONS, TAGS
from bench.common import machine_line
from bench.ingest import raw_consume
from tests.coldlog import publish
from tests.e2e.workload import build
from tests.services import stack_settings, start_stack


async def flush_all(settings: object, partitions: int, total: int) -> float:
    owned = [(t, p) for t in LOGGED for p in range(partitions)]
    flusher = Flusher(settings, owned=lambda: owned, topics=LOGGED)  # type: ignore[arg-type]
    started = time.perf_counter()
    task = asyncio.create_task(flusher.run())
    while flusher.stats.records < total:  # noqa: ASYNC110 (a poll of a counter, 10 ms)
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    await flusher.stop()
    await task
    return seconds


async def objects(settings: object) -> list[tuple[str, bytes]]:
    out = []
    async with s3_client(settings) as client:  # type: ignore[arg-type]
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket="modelview", Prefix="log/"):
            for item in page.get("Contents", []):
                response = await client.get_object(Bucket="modelview", Key=item["Key"])
                async with response["Body"] as body:
                    out.append((item["Key"], await body.read()))
    return out


async def raw_put(settings: object, blobs: list[tuple[str, bytes]]) -> float:
    async with s3_client(settings) as client:  # type: ignore[arg-type]
        started = time.perf_counter()
        for key, data in blobs:
            await client.put_object(Bucket="modelview", Key="raw/" + key, Body=data)
        return time.perf_counter() - started


async def replay(settings: object, partitions: int, rows: bool = False) -> tuple[float, int]:
    """Seconds and records of replaying every partition; `rows`: each record made a row too."""
    consumer = consumer_for(settings)  # type: ignore[arg-type]
    await consumer.start()
    count = 0
    try:
        async with segment_store(settings) as cold:  # type: ignore[arg-type]
            started = time.perf_counter()
            for topic in LOGGED:
                for p in range(partitions):
                    async for batch in read_partition(cold, consumer, topic, p):
                        count += sum(1 for _ in batch) if rows else len(batch)
            return time.perf_counter() - started, count
    finally:
        await consumer.stop()


async def raw_read(settings: object, keys: list[str]) -> tuple[float, int]:
    rows = 0
    async with s3_client(settings) as client:  # type: ignore[arg-type]
        started = time.perf_counter()
        for key in keys:
            response = await client.get_object(Bucket="modelview", Key=key)
            async with response["Body"] as body:
                rows += pq.read_table(io.BytesIO(await body.read())).num_rows
        return time.perf_counter() - started, rows


async def main(predictions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8).with_(
        flush_records=10_000, flush_seconds=0.5
    )
    stack = start_stack(settings)
    try:
        await ensure_topics(settings)
        items = build(predictions, seed=5).items
        total = await publish(
            settings,
            [(PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw) for i in items],
        )
        consume_seconds = await raw_consume(
            settings.bootstrap_servers, settings.partitions, total, decode=False
        )
        flush_seconds = await flush_all(settings, settings.partitions, total)
        blobs = await objects(settings)
        size = sum(len(d) for _, d in blobs)
        put_seconds = await raw_put(settings, blobs)
        # Replay with Kafka lost: what a restore or a rebuild after a broker restart reads.
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        await admin.delete_topics(list(LOGGED))
        await admin.close()
        await ensure_topics(settings)
        replay_seconds, replayed = await replay(settings, settings.partitions)
        rows_seconds, _ = await replay(settings, settings.partitions, rows=True)
        read_seconds, rows = await raw_read(settings, [k for k, _ in blobs])
        assert replayed == rows == total, (replayed, rows, total)
    finally:
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    mb = size / 1e6
    print(machine_line())
    print(f"records: {total} in {len(blobs)} segments, {mb:.1f} MB of Parquet (zstd)")
    raw_seconds = consume_seconds + put_seconds
    print(f"raw consume ({total / consume_seconds:,.0f} records/s) + put_object of the bytes:")
    print(f"  {mb / raw_seconds:,.1f} MB/s (put alone {mb / put_seconds:,.1f} MB/s)")
    print(f"flusher, Kafka backlog to S3:        {mb / flush_seconds:,.1f} MB/s")
    print(f"flush ratio (flusher / raw consume + put): {raw_seconds / flush_seconds:.3f}")
    print(f"raw get_object + pyarrow read_table: {rows / read_seconds:,.0f} records/s")
    print(f"replay reader (segments to records): {replayed / replay_seconds:,.0f} records/s")
    print(f"replay ratio (reader / raw read): {read_seconds / replay_seconds:.3f}")
    print(f"replay reader, every record made a row: {replayed / rows_seconds:,.0f} records/s")
    print(f"  ratio to raw read: {read_seconds / rows_seconds:.3f}")


async def unflushed_window(
    rate: int = 1_000, seconds: float = 8.0, flush_seconds: float = 1.0
) -> None:
    """Records lost when the local broker dies mid-stream, as seconds of a steady stream."""
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8).with_(flush_seconds=flush_seconds)
    stack = start_stack(settings)
    try:
        await ensure_topics(settings)
        owned = [(t, p) for t in LOGGED for p in range(settings.partitions)]
        flusher = Flusher(settings, owned=lambda: owned, topics=LOGGED)
        task = asyncio.create_task(flusher.run())
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
        await producer.start()
        sent, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            due = int((time.perf_counter() - started) * rate)
            for i in range(sent, due):
                await producer.send(PREDICTIONS, key=b"%d" % i, value=b"x" * 200)
            sent = max(sent, due)
            await asyncio.sleep(0.005)
        await producer.flush()
        os.killpg(stack.broker.pid() or 0, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5)
        while flusher.status()["buffered_records"]:  # noqa: ASYNC110 (what it read still lands)
            await asyncio.sleep(0.05)
        flushed = flusher.stats.records
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    finally:
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)
    lost = sent - flushed
    print(
        f"broker kill -9 at {rate} records/s, flush_seconds={flush_seconds}: {sent} sent, "
        f"{flushed} in S3, {lost} lost = {lost / rate:.2f} s of stream"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().predictions))
    asyncio.run(unflushed_window())
