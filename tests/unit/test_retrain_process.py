"""Retraining in its own process: a record comes back, a failure is counted, and a rebalance
abandons a training under way (so two leaders never train one dataset at once)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.models.retrain import Retrained, Retrainer
from app.settings import Settings
from tests.waiting import wait_until


def record_of(settings: Settings, dataset: str, trainer: str) -> Retrained:
    return Retrained(model=dataset, version="1", rows=7)


def fails(settings: Settings, dataset: str, trainer: str) -> Retrained:
    raise ValueError("no labeled rows")


def sleeps(settings: Settings, dataset: str, trainer: str) -> Retrained:
    time.sleep(120)
    return Retrained(model=dataset, version="1", rows=0)


def retrainer(job: Any) -> Retrainer:
    async def nothing() -> dict[str, int]:
        return {}

    made = Retrainer(Settings(retrain_min_labels=1), labeled=nothing, marks=nothing)
    made.job = job
    return made


async def test_a_training_record_comes_back_and_a_failure_is_counted() -> None:
    ok = retrainer(record_of)
    await ok._train("flights")
    assert ok.completed[0]["rows"] == 7 and ok._local_marks == {"flights": 7}
    bad = retrainer(fails)
    await bad._train("flights")
    assert bad.failures == 1 and not bad.completed


async def test_a_rebalance_abandons_the_training_under_way() -> None:
    busy = retrainer(sleeps)
    training = asyncio.ensure_future(busy._train("flights"))
    await wait_until(lambda: "flights" in busy._processes, within=30, what="training started")
    process = busy._processes["flights"]
    busy.abandon()
    await asyncio.wait_for(training, 30)
    assert busy.abandoned == 1 and not busy.completed and not process.is_alive()
