"""Retraining in a running worker: new labels trigger a new version, off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.client import HttpClient
from app.settings import Settings
from tests.coldlog import publish
from tests.e2e.test_training import labeled, records
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


async def test_enough_new_labels_train_a_new_version(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    settings = stack.with_(retrain_min_labels=50)
    process = worker(settings)
    async with HttpClient(process.url) as http:

        async def versions() -> list[dict[str, Any]]:
            status, body = await http.get("/v1/models/flights-train")
            return body["versions"] if status == 200 else []

        async def has(n: int) -> bool:
            return len(await versions()) >= n

        first_p, first_t = labeled(60, 0)
        await publish(settings, records(first_p, first_t))
        await wait_until(lambda: has(1), within=120, what="version 1 trained by the worker")
        v1 = (await versions())[0]
        assert v1["snapshot"]["rows"] == 60 and v1["trainer"] == "baseline"

        async def caught_up() -> bool:
            _, body = await http.get("/v1/datasets/flights-train")
            return body.get("labeled") == 60 and body.get("new_since_training") == 0

        await wait_until(caught_up, within=30, what="new_since_training back to 0")

        second_p, second_t = labeled(60, 100)
        await publish(settings, records(second_p, second_t))
        await wait_until(lambda: has(2), within=120, what="version 2 trained by the worker")
        v2 = (await versions())[1]
        # The snapshot reads the log, not the views: every published label is in it.
        assert v2["snapshot"]["rows"] == 120 and v2["snapshot"]["delta"]["added"] == 60
        assert v2["parent_version"] == "1"

        def completed() -> dict[str, Any]:
            health = process.health() or {}
            return health["training"]  # type: ignore[return-value]

        # Each version is also validated by replay and judged, in the same process: 12 of
        # 60 events held out are too few for the gate, which says so.
        await wait_until(lambda: completed()["completed"] >= 2, within=60, what="2 judged")
        assert completed()["failures"] == 0
        last = completed()["last"]
        assert last["validation"]["decision"]["promote"] is False
        reasons = last["validation"]["decision"]["reasons"]
        assert "too few events to judge" in reasons[0]
        assert reasons[-1].startswith("decided on all ")  # no event out of time: all unseen

        async def both_rejected() -> bool:
            statuses = {v["version"]: v["status"] for v in await versions()}
            return statuses == {"1": "rejected", "2": "rejected"}

        await wait_until(both_rejected, within=30, what="the registry folds both verdicts")
        process.wait_caught_up()  # ingestion went on meanwhile
