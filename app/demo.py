"""`modelview demo`: the local stack, a worker, sample flights published, the views filling."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.client import HttpClient, KafkaPublisher
from app.domain.datasets import DatasetSpec
from app.settings import Settings
from app.stack import Stack

CARRIERS = {"UA": 8.0, "AA": 5.0, "DL": 2.0, "B6": 12.0, "WN": 6.0}


def run_demo(settings: Settings, events: int, keep: bool) -> int:
    stack = Stack(settings)
    started_stack = not all(s["pid"] for s in stack.status().values())
    print(
        "starting the local stack (Tansu broker, SeaweedFS object store)..."
        if started_stack
        else "using the running stack"
    )
    stack.up()
    worker = _start_worker(settings)
    try:
        asyncio.run(_drive(settings, events))
    finally:
        if keep:
            print(
                f"\nleft running: worker pid {worker.pid} on http://{settings.web_host}:{settings.web_port}"
            )
            print("stop with: kill", worker.pid, "&& modelview stack down")
        else:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
            if started_stack:
                stack.down()
            print("\nstopped the worker" + (" and the stack" if started_stack else ""))
    return 0


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log = Path(settings.data_dir) / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    modelview = Path(sys.executable).parent / "modelview"
    print(f"starting a worker (log: {log})...")
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(modelview), "worker", "-l", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
        )


async def _drive(settings: Settings, count: int) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}"
    async with HttpClient(url) as http:
        await _wait_ready(http)
        rng = random.Random(2013)
        flights = _flights(rng, count)
        predictions = [p for p, _ in flights]
        async with KafkaPublisher(settings.bootstrap_servers) as kafka:
            print(f"publishing {count} predictions over Kafka, and their tags over HTTP...")
            for start in range(0, count, 500):
                batch = flights[start : start + 500]
                await kafka.predictions(p for p, _ in batch)
                await http.tags(t for _, t in batch if t is not None)
                await _show(http, f"after {start + len(batch)} flights")
            published = count + sum(t is not None for _, t in flights)
            await _wait_processed(http, published)
            await _show(http, "all processed")
        _, example = await http.get(f"/v1/predictions/{predictions[0]['event_id']}")
        print("\none event with its latest tag:", example)
        await _train(settings, http)


async def _train(settings: Settings, http: HttpClient) -> None:
    """A model is a view: snapshot flights-train from the log, fit the baseline, then Keras."""
    from app.training import train, trainer_named

    spec = DatasetSpec("flights-train", holdout=0.2)
    record: dict[str, Any] = {}
    for name in ("baseline", "keras"):
        record = await train(settings, spec, model="flight-delay-demo", trainer=trainer_named(name))
        snapshot = record["snapshot"]
        print(
            f"\ntrained flight-delay-demo v{record['version']} ({name}) on {record['train_rows']} "
            f"rows of snapshot {snapshot['snapshot_id']} ({snapshot['rows']} rows, "
            f"{record['holdout_rows']} held out; read {snapshot['read_records']} log records"
            + (", incrementally" if snapshot["incremental"] else "")
            + ")"
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = await http.get("/v1/models/flight-delay-demo")
        if status == 200 and body["versions"][-1]["version"] == record["version"]:
            shown = [(v["version"], v["trainer"], v["status"]) for v in body["versions"][-2:]]
            print("registry, GET /v1/models/flight-delay-demo:", shown)
            return
        await asyncio.sleep(0.2)


async def _wait_ready(http: HttpClient, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            status, body = await http.get("/healthz")
            if status == 200 and body.get("ready"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError("the worker did not become ready; see its log")


async def _wait_processed(http: HttpClient, published: int, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        _, body = await http.get("/healthz")
        counts = body.get("ingest", {})
        if sum(counts.get(k, 0) for k in ("applied", "duplicates", "dead_letters")) >= published:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the worker did not process {published} events in {within}s")


async def _show(http: HttpClient, when: str) -> None:
    await asyncio.sleep(0.5)  # pacing for people watching, not synchronisation
    _, datasets = await http.get("/v1/datasets")
    _, metrics = await http.get("/v1/models/flight-delay/metrics")
    sizes = ", ".join(f"{d['name']}={d['size']}" for d in datasets.get("datasets", []))
    versions = metrics.get("versions", {})
    models = ", ".join(
        f"v{v}: {m['predictions']} predictions, {m['labeled']} labeled, MAE {m.get('mae', float('nan')):.1f}"
        for v, m in versions.items()
    )
    print(f"  {when:>20}: datasets [{sizes}]  model flight-delay [{models}]")


Flight = tuple[dict[str, Any], dict[str, Any] | None]


def _flights(rng: random.Random, count: int) -> list[Flight]:
    """Synthetic flights: the predicted arrival delay at departure, the true one after landing."""
    start = datetime(2013, 1, 1, 6, tzinfo=UTC)
    flights: list[Flight] = []
    for i in range(count):
        carrier = rng.choice(list(CARRIERS))
        distance = rng.randint(200, 2500)
        truth = CARRIERS[carrier] + distance / 400 + rng.gauss(0, 10)
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        departed = start + timedelta(minutes=3 * i)
        prediction = {
            "schema_version": 1,
            "event_id": event_id,
            "model": "flight-delay",
            "model_version": "1" if i < count // 2 else "2",
            "occurred_at": departed.isoformat(),
            "features": {"carrier": carrier, "distance": distance},
            "prediction": {
                "value": round(7.0 if i < count // 2 else CARRIERS[carrier] + distance / 400, 2)
            },
        }
        tag = None
        if rng.random() < 0.9:  # some flights never report back
            tag = {
                "schema_version": 1,
                "tag_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_id": event_id,
                "label": round(truth, 2),
                "datasets": ["flights-train" if rng.random() < 0.8 else "flights-eval"],
                "source": "arrivals",
                "tagged_at": (departed + timedelta(hours=3)).isoformat(),
            }
        flights.append((prediction, tag))
    return flights
