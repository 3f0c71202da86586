"""Drift on the real stack: live traffic that shifts half way drifts on the shifted feature
only, against the champion's training snapshot."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from app.client import HttpClient
from app.domain.codec import format_time
from app.settings import Settings
from app.topics import PREDICTIONS, TAGS
from tests import factories
from tests.browser import Browser, rendered
from tests.coldlog import publish
from tests.e2e.test_serving import cli
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def traffic(
    n: int, at: datetime, seed: int, shift: float = 0.0, dataset: str | None = None
) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        event = factories.prediction(
            model="delay",
            model_version="1",
            occurred_at=format_time(at + timedelta(seconds=i)),
            features={
                "distance": rng.gauss(1000, 200) + shift,
                "carrier": rng.choice(("UA", "DL", "AA")),
            },
            prediction={"value": rng.gauss(10, 3)},
        )
        out.append((PREDICTIONS, event["event_id"].encode(), orjson.dumps(event)))
        if dataset:
            tag = factories.tag(event["event_id"], label=rng.gauss(12, 4), datasets=[dataset])
            out.append((TAGS, tag["event_id"].encode(), orjson.dumps(tag)))
    return out


async def test_a_shift_half_way_drifts_the_shifted_feature_only(
    stack: Settings, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    process = worker(stack.with_(drift_seconds=1.0))
    # Relative to today, whatever the date: a week ago for training, then two live hours.
    day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    before, after = day.replace(hour=10), day.replace(hour=12)
    await publish(stack, traffic(400, day - timedelta(days=5), seed=1, dataset="flights"))
    cli(stack, "train", "flights", "--model", "delay")

    async with HttpClient(process.url) as http:
        process.wait_caught_up()

        async def registered() -> bool:
            return (await http.get("/v1/models/delay"))[0] == 200

        # The registry reaches the worker by its own topic.
        await wait_until(registered, within=30, what="the model in the registry")
        status, body = await http.get("/v1/models/delay/drift")
        assert status == 409 and "against" in body["error"], body  # no champion yet

        cli(stack, "models", "promote", "delay", "1")
        await publish(stack, traffic(400, before, seed=2))
        await publish(stack, traffic(400, after, seed=3, shift=500.0))
        process.wait_caught_up()

        async def drift_in(hour: datetime) -> dict[str, Any]:
            name = hour.strftime("%Y-%m-%dT%H")
            status, body = await http.get(f"/v1/models/delay/drift?from={name}&to={name}")
            assert status == 200, body
            return body

        async def champion_known() -> bool:
            status, body = await http.get("/v1/models/delay")
            return status == 200 and body["champion"] == "1"

        # The promotion too.
        await wait_until(champion_known, within=30, what="the champion in the registry")
        steady, shifted = await drift_in(before), await drift_in(after)

        # The gauges: the leader (the one worker) measures the last 24 hours seen, both
        # hours, every MODELVIEW_DRIFT_SECONDS.
        gauges: dict[str, float] = {}

        async def measured() -> bool:
            async with (
                aiohttp.ClientSession() as session,
                session.get(process.url + "/metrics") as response,
            ):
                assert response.status == 200
                text = await response.text()
            gauges.clear()
            for line in text.splitlines():
                if line.startswith('modelview_drift_psi{field="'):
                    name = line.split('field="', 1)[1].split('"', 1)[0]
                    gauges[name] = float(line.rsplit(" ", 1)[1])
            return gauges.get("distance", 0.0) > 0.2

        # Measured first on the training hours alone (no drift), then on the live ones.
        await wait_until(measured, within=30, what="the distance gauge past 0.2")

        # The dashboard plots it: a PSI bar per field beside the threshold.
        async with Browser() as browser:
            await browser.goto(process.url + "/dashboard")
            await rendered(browser, 4)
            text = await browser.evaluate("document.body.innerText")
            assert "shifted: distance" in text and "against v1's training snapshot" in text, text
            assert await browser.screenshot(tmp_path / "dashboard.png") > 10_000
            assert browser.errors == [], browser.errors

    assert steady["reference"]["version"] == "1" and steady["reference"]["events"] == 400
    assert steady["live_events"] == shifted["live_events"] == 400
    assert steady["drifted"] == [], steady
    assert shifted["drifted"] == ["distance"], shifted
    psi = {h: b["features"]["distance"]["psi"] for h, b in (("1", steady), ("2", shifted))}
    assert psi["2"] > 0.2 > psi["1"], psi
    assert shifted["features"]["distance"]["live"]["mean"] > 1400
    assert steady["features"]["carrier"]["live"]["kind"] == "categorical"
    assert max(gauges["carrier"], gauges["@prediction"]) < 0.2, gauges
    assert "@label" not in gauges  # the live hours have no labels yet
    assert steady["prediction"]["psi"] < 0.2 and steady["label"]["psi"] is None  # no labels yet
