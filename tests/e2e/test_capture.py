"""Never lose a served prediction: every predict answered 200 is in the log and in the views,
once, when the worker is killed with -9 under load and when the broker stops for a while."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from app.client import HttpClient
from app.settings import Settings
from app.stack.services import Stack
from app.topics import PREDICTIONS
from tests.coldlog import kafka_records, publish
from tests.e2e.test_serving import cli, served_events
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

CLIENTS = 20
REQUEST = {"features": {"distance": 120, "carrier": "UA"}}


async def champion(settings: Settings, url: str) -> None:
    """A baseline version of model "delay", promoted by hand, and the worker at `url` knows
    it (requests sent before it folds the promotion are answered 409, no champion)."""
    await publish(settings, served_events("loose", 120, 5.0, seed=5))
    cli(settings, "train", "loose", "--model", "delay")
    cli(settings, "models", "promote", "delay", "1")

    async def known() -> bool:
        async with HttpClient(url) as http:
            status, body = await http.get("/v1/models/delay")
        return status == 200 and body.get("champion") == "1"

    await wait_until(known, within=30, what="the worker to know the champion")


async def load(url: str, stop: asyncio.Event) -> tuple[dict[str, Any], Counter[int]]:
    """CLIENTS concurrent clients predicting until `stop`: the answers (200) by event id, and
    the statuses."""
    answered: dict[str, Any] = {}
    statuses: Counter[int] = Counter()

    async def client() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    async with session.post(
                        url + "/v1/models/delay/predict", data=orjson.dumps(REQUEST)
                    ) as response:
                        body = orjson.loads(await response.read())
                        statuses[response.status] += 1
                        if response.status == 200:
                            answered[body["event_id"]] = body
                except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                    statuses[0] += 1  # no answer: the worker is gone; nothing was promised
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return answered, statuses


async def each_once_in_log_and_views(
    settings: Settings, url: str, answered: dict[str, Any]
) -> None:
    logged = await kafka_records(settings, [PREDICTIONS])
    keys = Counter(key.decode() for key, _, _ in logged.values())
    missing = [i for i in answered if keys[i] == 0]
    assert not missing, f"{len(missing)} of {len(answered)} answered predictions not in the log"
    async with HttpClient(url) as http:
        for event_id in answered:
            status, view = await http.get(f"/v1/predictions/{event_id}")
            assert status == 200, (event_id, view)
        # Counted once each, whatever the retries wrote to the log twice.
        status, metrics = await http.get("/v1/models/delay/metrics")
        assert status == 200, metrics
    served = {
        orjson.loads(value)["event_id"]
        for _, value, _ in logged.values()
        if orjson.loads(value).get("model_version") == "1"
    }
    assert metrics["versions"]["1"]["predictions"] == len(served)


async def test_kill_9_under_load_loses_no_answered_prediction(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    assert stack.capture == "durable"  # the default
    process = worker()
    await champion(stack, process.url)
    stop = asyncio.Event()
    loading = asyncio.create_task(load(process.url, stop))
    await asyncio.sleep(random.Random(7).uniform(1.5, 3.0))  # load runs; the kill moment
    process.kill()
    stop.set()
    answered, statuses = await loading
    assert len(answered) > 100, statuses  # the kill came mid-load
    again = worker()
    again.wait_caught_up()
    await each_once_in_log_and_views(stack, again.url, answered)
    # A client that never saw its answer retries with the same event_id: it gets the same
    # prediction back from the views, and nothing new is captured.
    before = len(await kafka_records(stack, [PREDICTIONS]))
    async with HttpClient(again.url) as http:
        for event_id in sorted(answered)[:20]:
            retry = await http.predict("delay", [{**REQUEST, "event_id": event_id}])
            first = answered[event_id]
            assert retry["predictions"][0]["prediction"] == first["prediction"]
            assert retry["predictions"][0]["model_version"] == first["model_version"]
        status, body = await http.request(
            "POST",
            "/v1/models/delay/predict",
            {"features": {"distance": 1}, "event_id": sorted(answered)[0]},
        )
        assert status == 409 and body["details"]["index"] == 0, body
    assert len(await kafka_records(stack, [PREDICTIONS])) == before


async def test_broker_away_for_10_s_answers_200_or_503_and_keeps_every_200(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(capture_ack_seconds=2.0)
    process = worker(settings)
    await champion(settings, process.url)
    stop = asyncio.Event()
    loading = asyncio.create_task(load(process.url, stop))
    await wait_until(lambda: _served(process) > 100, within=30, what="load under way")
    broker = Stack(settings).broker.pid()
    assert broker is not None
    os.killpg(broker, signal.SIGSTOP)  # away: every request to it hangs
    try:
        await asyncio.sleep(10)  # the outage lasts this long; the clients keep asking
    finally:
        os.killpg(broker, signal.SIGCONT)
    await wait_until(lambda: _served(process) > 200, within=60, what="serving again")
    stop.set()
    answered, statuses = await loading
    assert set(statuses) <= {200, 503}, statuses  # bounded, and never a 5xx of another kind
    assert statuses[503] > 0, statuses  # the outage was seen, and refused, not answered
    process.wait_caught_up()
    await each_once_in_log_and_views(settings, process.url, answered)


def _served(process: WorkerProcess) -> int:
    serving: Any = (process.health() or {}).get("serving") or {}
    return int(sum(serving.get("served", {}).values()))
