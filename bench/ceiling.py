"""Faust's ceiling: an agent that does nothing with the records, next to raw aiokafka consume.

The ingest agent takes batches with `stream.take_events` and folds them. Here the same kind
of agent, on the same topics, broker profile and batch settings, only counts. Its rate is
the most any fold inside a Faust agent can reach on this machine. Printed: records/s of
both, and the ratio of the agent to raw consume. Compare that ratio with modelview's in
`bench.ingest`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.settings import Settings
from app.topic_admin import ensure_topics
from app.topics import PREDICTIONS, TAGS
from bench.common import machine_line
from bench.ingest import publish, raw_consume
from tests.e2e.workload import build
from tests.services import stack_settings, start_stack


def _agent(settings: Settings, total: int, data_dir: str, send: Connection) -> None:
    """The child process: a Faust worker whose agent counts `total` records, then reports."""
    import faust

    from app.stack.profiles import PROFILES
    from app.topic_admin import raw_topic

    app = faust.App(
        f"ceiling-{int(time.time() * 1000)}",
        broker=settings.broker_url,
        store="memory://",
        datadir=data_dir,
        topic_partitions=settings.partitions,
        autodiscover=False,
        web_enabled=False,
        **PROFILES[settings.broker],
    )
    source = raw_topic(app, PREDICTIONS, TAGS, partitions=settings.partitions)
    seen = {"n": 0, "first": 0.0}

    async def nothing(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
            if not seen["n"]:
                seen["first"] = time.perf_counter()
            seen["n"] += len(events)
            if seen["n"] >= total:
                send.send(time.perf_counter() - seen["first"])
                os._exit(0)  # the measurement is sent; a clean Faust stop adds nothing to it

    app.agent(source, name="nothing")(nothing)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def agent_seconds(settings: Settings, total: int, data_dir: Path) -> float:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_agent, args=(settings, total, str(data_dir), send))
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
        agent = total / agent_seconds(settings, total, root / "faust")
        print(machine_line())
        print(f"{total} records, {settings.partitions} partitions, broker {settings.broker}")
        print(f"raw aiokafka consume + orjson.loads: {raw:,.0f} records/s")
        print(f"Faust agent that does nothing:       {agent:,.0f} records/s")
        print(f"ratio (do-nothing Faust agent / raw consume): {agent / raw:.4f}")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.predictions))
