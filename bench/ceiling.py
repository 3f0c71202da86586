"""Faust's ceiling: agents that do nothing with the records, next to raw aiokafka consume.

Two agents, on the same topics and broker profile, only count:
- `per-record`: Faust's own delivery, one stream event per record, taken in batches with
  `stream.take_events` (how the ingest agent read until 2026-12-02);
- `per-fetch`: the worker's delivery (`agents.ingest`, `CommittingConsumer`), one event per
  fetch, with the ingest agent's code and a counter in place of the fold.
Each rate is the most any fold inside such an agent can reach on this machine. Printed:
records/s of each, and its ratio to raw consume. Compare with modelview's in `bench.ingest`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import PREDICTIONS, TAGS
from app.views.ingestor import DurableCursor
from bench.common import machine_line
from bench.ingest import publish, raw_consume
from tests.e2e.workload import build
from tests.services import stack_settings, start_stack


def _agent(settings: Settings, total: int, data_dir: str, send: Connection, mode: str) -> None:
    """The child process: a Faust worker whose agent counts `total` records, then reports."""
    import faust

    from agents import ingest
    from app.stack.profiles import PROFILES
    from app.topic_admin import raw_topic
    from app.views.compat import CommittingConsumer

    app = faust.App(
        f"ceiling-{int(time.time() * 1000)}",
        broker=settings.broker_url,
        store="memory://",
        datadir=data_dir,
        topic_partitions=settings.partitions,
        autodiscover=False,
        web_enabled=False,
        broker_max_poll_records=settings.batch_size,
        **PROFILES[settings.broker],
    )
    seen = {"n": 0, "first": 0.0}

    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # The clock starts when the partitions are assigned, as bench.ingest's does once the
        # worker holds them: from the first record delivered, the consumer would already
        # have prefetched much of the backlog (a per-fetch rate of 4x raw consume, measured).
        if assigned and not seen["first"]:
            seen["first"] = time.perf_counter()

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]

    def count(n: int) -> None:
        if not seen["first"]:
            seen["first"] = time.perf_counter()
        seen["n"] += n
        if seen["n"] >= total:
            send.send(time.perf_counter() - seen["first"])
            os._exit(0)  # the measurement is sent; a clean Faust stop adds nothing to it

    if mode == "per-fetch":

        class Counter:
            durable = DurableCursor()  # nothing is folded: a catch-up event counts nothing

            async def process_until_done(self, records: Any) -> None:
                count(len(records))

            async def process(self, records: Any, ends: Any = None) -> None:
                count(len(records))

        _, deliver, _ = ingest.register(app, Counter(), settings)  # type: ignore[arg-type]
        app.transport.Consumer = partial(  # type: ignore[misc,assignment]
            CommittingConsumer,
            committable=lambda topic, partition: None,
            topics=(PREDICTIONS, TAGS),
            deliver=deliver,
        )
    else:
        source = raw_topic(app, PREDICTIONS, TAGS, partitions=settings.partitions)

        async def nothing(stream: Any) -> None:
            batches = stream.take_events(settings.batch_size, within=settings.batch_within)
            async for events in batches:
                count(len(events))

        app.agent(source, name="nothing")(nothing)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def agent_seconds(settings: Settings, total: int, data_dir: Path, mode: str) -> float:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_agent, args=(settings, total, str(data_dir), send, mode))
    process.start()
    send.close()
    try:
        if not receive.poll(600):
            raise RuntimeError("the do-nothing agent did not read every record in 600 s")
        seconds: float = receive.recv()
        return seconds
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()


async def main(predictions: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=8)
    stack = start_stack(settings)
    try:
        await ensure_topics(settings)
        workload = build(predictions, seed=11)
        items = [
            (PREDICTIONS if i.kind == "prediction" else TAGS, i.key, i.raw) for i in workload.items
        ]
        await publish(settings.bootstrap_servers, items)
        total = len(items)
        raw = total / await raw_consume(settings.bootstrap_servers, settings.partitions, total)
        rates = {
            mode: total / agent_seconds(settings, total, root / mode, mode)
            for mode in ("per-record", "per-fetch")
        }
        print(machine_line())
        print(f"{total} records, {settings.partitions} partitions, broker {settings.broker}")
        print(f"raw aiokafka consume + orjson.loads: {raw:,.0f} records/s")
        for mode, rate in rates.items():
            print(f"Faust agent that does nothing, {mode}: {rate:,.0f} records/s")
            print(f"  ratio (do-nothing Faust agent / raw consume): {rate / raw:.4f}")
    finally:
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.predictions))
