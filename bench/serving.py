"""Serving and validation costs, each against its own baseline in the same run.

1. Predict latency: the Predictor answering with a Keras model, at 1 and at 20 concurrent
   clients, with durable capture (answered once the broker acknowledged), async capture
   (answered once queued), and no capture (a send that goes nowhere). Rounds alternate, so
   drift on a shared machine hits all three. Printed: p50 and p99 of each, and the ratio of
   durable to no capture at p99 (the target is at most 1.5 at 20 clients).
2. Replay scoring: `validation.score` on feature dicts (what validation does per event),
   next to raw `network.predict` on arrays built beforehand. Printed: events/s, ratio.
3. Validation end to end on the stack: `validate` of a Keras version over N labeled events
   it never saw (log read, fold, score, report, store), next to raw predict. events/s, ratio.
4. Batch scoring end to end: `modelview score`'s job over a Parquet file of --rows rows
   (read, check, predict, capture each to Kafka, write the results to S3), next to raw
   predict on the same rows' arrays (the issue's baseline: the target is at least 0.5), and
   next to the traced graph the model serves with, the fastest raw call. rows/s, ratios;
   and a one-row job's time, what any job costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from aiokafka import AIOKafkaProducer

from app.domain.datasets import DatasetSpec
from app.learning.keras import KerasTrainer, columns
from app.models.scoring import score as score_job
from app.models.serving import Capture, Predictor
from app.models.training import load_version, train
from app.models.validation import score, validate
from app.topic_admin import ensure_topics
from app.topics import PREDICTIONS, TAGS
from bench.common import machine_line, py_spy, shares, stop_spy
from tests.coldlog import publish
from tests.services import stack_settings, start_stack

CARRIERS = ("UA", "AA", "DL", "B6", "WN", "EV", "MQ")


def flights(n: int, seed: int) -> tuple[list[dict[str, Any]], list[float]]:
    rng = random.Random(seed)
    features, labels = [], []
    for _ in range(n):
        row: dict[str, Any] = {
            "carrier": rng.choice(CARRIERS),
            "distance": float(rng.randint(200, 2500)),
            "dep_delay": max(-10.0, rng.gauss(10, 30)),
            "hour": rng.randint(5, 23),
        }
        features.append(row)
        labels.append(row["dep_delay"] * 0.9 + row["distance"] / 500 + rng.gauss(0, 8))
    return features, labels


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latencies(
    predictor: Predictor, requests: list[dict[str, Any]], clients: int
) -> list[float]:
    """Each of `clients` concurrent clients sends its share, one request after another."""
    out: list[float] = []

    async def client(mine: list[dict[str, Any]]) -> None:
        for request in mine:
            started = time.perf_counter()
            await predictor.predict("bench", [request])
            out.append(time.perf_counter() - started)

    await asyncio.gather(*(client(requests[i::clients]) for i in range(clients)))
    return out


MODES = ("durable", "async", "none")


async def predict_latency(
    settings: Any, model: Any, requests: int, rounds: int, profile: str | None = None
) -> None:
    await ensure_topics(settings)
    # As the worker's producer: every replica acknowledges, no linger.
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()

    async def to_kafka(key: bytes, value: bytes) -> Any:
        return await producer.send(PREDICTIONS, key=key, value=value)

    async def nowhere(key: bytes, value: bytes) -> Any:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def load(name: str, version: str) -> Any:
        return model

    async def champion(name: str) -> str:
        return "1"

    features, _ = flights(requests, seed=5)
    asked = [{"features": f} for f in features]
    measured: dict[tuple[str, int], list[float]] = {}
    try:
        for _ in range(rounds):
            for clients in (1, 20):
                for mode in MODES:
                    capture = Capture(nowhere if mode == "none" else to_kafka, 100_000)
                    runner = asyncio.ensure_future(capture.run())
                    predictor = Predictor(
                        champion, load, capture, 256 * 1024, durable=mode == "durable"
                    )
                    await predictor.predict("bench", [asked[0]])  # load, warm
                    took = await latencies(predictor, asked, clients)
                    measured.setdefault((mode, clients), []).extend(took)
                    await capture.drain()
                    runner.cancel()
        if profile:
            await profile_modes(to_kafka, nowhere, load, champion, asked, profile)
    finally:
        await producer.stop()
    print(
        f"predict latency, {requests} requests x {rounds} rounds per mode, broker {settings.broker}"
    )
    for clients in (1, 20):
        for mode in MODES:
            took = measured[(mode, clients)]
            print(
                f"  {clients:>2} clients, {mode:<8} capture: p50 {percentile(took, 0.5) * 1e3:6.2f} ms"
                f"  p99 {percentile(took, 0.99) * 1e3:6.2f} ms"
            )
        durable = percentile(measured[("durable", clients)], 0.99)
        none = percentile(measured[("none", clients)], 0.99)
        print(f"  ratio at {clients} clients (durable / no capture, p99): {durable / none:.2f}")


# Where the event loop's time goes while it serves: the innermost frame that matches.
BUCKETS = {
    "model (TensorFlow, Keras)": ("tensorflow/", "keras/", "app/learning/"),
    "producer (aiokafka)": ("aiokafka/",),
    "request path (app: checks, events, capture queue)": ("app/",),
    "asyncio": ("asyncio/",),
}


async def profile_modes(
    to_kafka: Any, nowhere: Any, load: Any, champion: Any, asked: list[Any], out: str
) -> None:
    """py-spy on this process while 20 clients predict, once per capture mode; printed:
    the share of samples in each of BUCKETS, so the modes' costs can be told apart."""
    for mode in MODES:
        capture = Capture(nowhere if mode == "none" else to_kafka, 100_000)
        runner = asyncio.ensure_future(capture.run())
        predictor = Predictor(champion, load, capture, 256 * 1024, durable=mode == "durable")
        await predictor.predict("bench", [asked[0]])
        path = f"{out}.{mode}.txt"
        spy = py_spy(os.getpid(), path, idle=False)
        await asyncio.sleep(1.0)  # py-spy attaches (a start, not a condition to wait on)
        started = time.perf_counter()
        await latencies(predictor, asked * 2, 20)
        seconds = time.perf_counter() - started
        stop_spy(spy)
        await capture.drain()
        runner.cancel()
        parts = ", ".join(f"{name} {share:.0%}" for name, share in shares(path, BUCKETS).items())
        print(f"  profile, 20 clients, {mode} capture ({seconds:.2f} s, {path}): {parts}")


def scoring(model: Any, n: int) -> float:
    features, _ = flights(n, seed=6)
    x = columns(model.schema, features)
    started = time.perf_counter()
    model.network.predict(x, verbose=0, batch_size=1024)
    raw = n / (time.perf_counter() - started)
    started = time.perf_counter()
    score(model, features)
    ours = n / (time.perf_counter() - started)
    print(f"raw network.predict on arrays: {raw:,.0f} events/s")
    print(f"validation.score on events:    {ours:,.0f} events/s")
    print(f"ratio (score / raw predict): {ours / raw:.3f}")
    return raw


async def end_to_end(settings: Any, n: int, raw: float) -> str:
    features, labels = flights(n, seed=7)
    items = []
    for i, (row, label) in enumerate(zip(features, labels, strict=True)):
        event_id = str(uuid.uuid4())
        event = {
            "schema_version": 1,
            "event_id": event_id,
            "model": "bench",
            "model_version": "legacy",
            "occurred_at": f"2013-01-{1 + i % 28:02d}T10:00:00Z",
            "features": row,
            "prediction": {"value": 0.0},
        }
        tag = {
            "schema_version": 1,
            "tag_id": str(uuid.uuid4()),
            "event_id": event_id,
            "label": label,
            "datasets": ["bench"],
            "tagged_at": "2013-02-01T00:00:00Z",
        }
        items += [
            (PREDICTIONS, event_id.encode(), orjson.dumps(event)),
            (TAGS, event_id.encode(), orjson.dumps(tag)),
        ]
    await publish(settings, items)
    # Trained on a tenth; the other nine tenths are the replay.
    record = await train(settings, DatasetSpec("bench", holdout=0.9), trainer=KerasTrainer())
    started = time.perf_counter()
    result = await validate(settings, "bench", record.version)
    rate = result.measured.n / (time.perf_counter() - started)
    print(f"validate end to end: {result.measured.n} events, {rate:,.0f} events/s")
    print(f"ratio (validate end to end / raw predict): {rate / raw:.3f}")
    return record.version


async def batch_scoring(settings: Any, n: int, version: str, root: Path) -> None:
    features, _ = flights(n, seed=8)
    file = root / "batch.parquet"
    pq.write_table(pa.Table.from_pylist(features), file)
    model = await load_version(settings, "bench", version)
    x = columns(model.schema, features)  # type: ignore[attr-defined]
    started = time.perf_counter()
    model.network.predict(x, verbose=0, batch_size=1024)  # type: ignore[attr-defined]
    raw = n / (time.perf_counter() - started)
    # The fastest raw call: the traced graph the model itself serves with, on the arrays.
    graph = model._serving()  # type: ignore[attr-defined]
    tensors = {k: tf.convert_to_tensor(v) for k, v in x.items()}
    graph({k: t[:1] for k, t in tensors.items()})  # traced before it is timed
    started = time.perf_counter()
    np.asarray(graph(tensors))
    traced = n / (time.perf_counter() - started)
    # What a job costs whatever its size (the version's load and trace, the producer, the
    # status and result writes): a job of one row.
    single = root / "one.parquet"
    pq.write_table(pa.Table.from_pylist(features[:1]), single)
    started = time.perf_counter()
    await score_job(settings, "bench", version=int(version), parquet=single, job="bench-one")
    fixed = time.perf_counter() - started
    started = time.perf_counter()
    status, _ = await score_job(settings, "bench", version=int(version), parquet=file, job="bench")
    took = time.perf_counter() - started
    rate = status.scored / took
    print(f"raw network.predict on the rows' arrays: {raw:,.0f} rows/s")
    print(f"raw traced graph on the rows' arrays: {traced:,.0f} rows/s")
    print(f"a job of one row: {fixed:.3f} s")
    print(f"batch scoring end to end: {status.scored} rows, {took:.3f} s, {rate:,.0f} rows/s")
    if took > fixed:
        per_row = (took - fixed) / status.scored * 1e6
        print(f"  beyond a one-row job's time: {per_row:.1f} µs a row")
    print(f"ratio (batch scoring / raw predict): {rate / raw:.3f}")
    print(f"ratio (batch scoring / raw traced graph): {rate / traced:.3f}")


async def main(
    requests: int, rounds: int, events: int, rows: int, profile: str | None = None
) -> None:
    root = Path(tempfile.mkdtemp(prefix="modelview-bench-"))
    settings = stack_settings(root / "data", partitions=4)
    stack = start_stack(settings)
    try:
        features, labels = flights(5000, seed=4)
        model = KerasTrainer().fit(features, labels, seed=0)
        print(machine_line())
        await predict_latency(settings, model, requests, rounds, profile)
        raw = scoring(model, events)
        version = await end_to_end(settings, events, raw)
        await batch_scoring(settings, rows, version, root)
    finally:
        stack.down(grace=0)  # a throwaway stack: killed, as the tests kill theirs
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500, help="per round and mode")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--rows",
        type=int,
        default=200_000,
        help="of the batch scoring job: a job costs about 0.2 s whatever its size, so a "
        "small one measures that, not the rate",
    )
    parser.add_argument(
        "--profile", help="also profile each capture mode with py-spy: files PROFILE.MODE.txt"
    )
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds, args.events, args.rows, args.profile))
