"""Validation by replay, the promotion gate, and serving with capture, on the real stack."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from app.client import HttpClient
from app.domain.codec import format_time, parse_time
from app.domain.datasets import in_holdout
from app.models.training import version_manifest
from app.settings import Settings
from app.topics import PREDICTIONS, TAGS
from tests import factories
from tests.browser import CHROMIUM, Browser, rendered
from tests.coldlog import kafka_records, publish
from tests.e2e.test_training import model_events
from tests.services import WorkerProcess, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()


def served_events(
    dataset: str, n: int, served_error: float, seed: int, days_ago: int = 12
) -> list[tuple[str, bytes, bytes]]:
    """Labeled events whose logged prediction, by version "legacy", was off by about
    `served_error`; labels are spread so that a constant model errs by about 7.5."""
    rng = random.Random(seed)
    # Five days ending a week ago: the dashboard plots them beside today's served predictions
    # whatever the date the test runs on.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days_ago)
    out = []
    for i in range(n):
        label = rng.uniform(10, 40)
        event = factories.prediction(
            model="delay",
            model_version="legacy",
            occurred_at=format_time(first_day + timedelta(days=i % 5, hours=i % 24)),
            features={"distance": 100 + i, "carrier": "UA" if i % 2 else "DL"},
            prediction={"value": label + rng.choice((-1, 1)) * served_error},
        )
        tag = factories.tag(event["event_id"], label=label, datasets=[dataset])
        out += [
            (PREDICTIONS, event["event_id"].encode(), orjson.dumps(event)),
            (TAGS, tag["event_id"].encode(), orjson.dumps(tag)),
        ]
    return out


def cli(settings: Settings, *args: str) -> str:
    done = run_cli(settings, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_gate_rejects_worse_promotes_better_and_the_champion_serves_with_capture(
    stack: Settings, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    process = worker()
    # "strict": the model then serving was good (off by 2); "delay": it was awful (off by 500).
    await publish(stack, served_events("strict", 300, 2.0, seed=1))
    await publish(stack, served_events("loose", 300, 500.0, seed=2))
    for dataset, model in (("strict", "strict"), ("loose", "delay")):
        cli(stack, "train", dataset, "--model", model, "--holdout", "0.5")

    out = cli(stack, "validate", "strict", "1", "--gate", "--segment-by", "carrier")
    assert "gate: rejected" in out and "needs at least" in out, out
    out = cli(stack, "validate", "delay", "1", "--gate", "--segment-by", "carrier")
    assert "gate: promoted" in out, out

    events = [e for e in await model_events(stack) if e["type"] != "ModelTrained"]
    kinds = {(e["model"], e["type"]) for e in events}
    assert kinds == {
        ("strict", "ModelValidated"),
        ("strict", "ModelRejected"),
        ("delay", "ModelValidated"),
        ("delay", "ModelPromoted"),
    }
    rejected = next(e for e in events if e["type"] == "ModelRejected")
    assert any("does not exclude no gain" in r for r in rejected["reasons"]), rejected

    async with HttpClient(process.url) as http:

        async def registry(model: str) -> dict[str, Any]:
            status, body = await http.get(f"/v1/models/{model}")
            return body if status == 200 else {}

        await wait_until(
            lambda: _champion_is(registry, "delay", "1"), within=30, what="delay's champion"
        )
        strict = await registry("strict")
        assert strict["champion"] is None and strict["versions"][0]["status"] == "rejected"
        assert strict["versions"][0]["reasons"] == rejected["reasons"]
        # The gate's decision reaches the registry (it was always null before).
        assert strict["versions"][0]["decision"]["promote"] is False
        delay = await registry("delay")
        assert delay["versions"][0]["decision"]["promote"] is True
        assert delay["versions"][0]["decision"]["metric"] == "mae"

        # The report, stored in S3: about half the 300 events were held out, all judged.
        status, report = await http.get("/v1/models/delay/versions/1/validation?events=5")
        assert status == 200 and report["n"] == report["unseen_events"]
        assert 100 < report["n"] < 200 and report["compared_with"] is None
        assert report["challenger"]["mae"] < 10 < 400 < report["served"]["mae"]
        assert set(report["segments"]["feature:carrier"]) == {"UA", "DL"}
        assert sum(g["n"] for g in report["segments"]["time:day"].values()) == report["n"]
        assert len(report["events"]) == 5 and report["events_total"] == report["n"]
        assert (await http.get("/v1/models/delay/versions/9/validation"))[0] == 404

        # Serving: 200 concurrent requests, each captured exactly once.
        request = {"features": {"distance": 120, "carrier": "UA"}}
        answers = await asyncio.gather(*(http.predict("delay", [request]) for _ in range(200)))
        ids = [a["predictions"][0]["event_id"] for a in answers]
        assert len(set(ids)) == 200 and {a["model_version"] for a in answers} == {"1"}

        async def captured() -> bool:
            logged = await kafka_records(stack, [PREDICTIONS])
            keys = Counter(key for key, _, _ in logged.values())
            return all(keys[i.encode()] == 1 for i in ids)

        await wait_until(captured, within=30, what="each prediction in Kafka once")

        async def in_views() -> bool:
            for event_id in ids:  # each is in the views, as the captured event
                status, view = await http.get(f"/v1/predictions/{event_id}")
                if status != 200:
                    return False
                assert view["event"]["model_version"] == "1", view
            return True

        await wait_until(in_views, within=30, what=f"the 200 in the views {process.health()}")
        async with aiohttp.ClientSession() as session, session.get(process.url + "/metrics") as r:
            scraped = await r.text()
        assert r.status == 200 and r.content_type == "text/plain", scraped[:300]
        served = re.search(
            r'modelview_predictions_served_total\{model="delay",version="1"\} (\d+)', scraped
        )
        assert served and int(served.group(1)) >= 200, scraped
        await dashboard_draws(process.url, tmp_path)

        # Bad requests are clear 4xx answers.
        status, body = await http.request("POST", "/v1/models/delay/predict", {"feature": {}})
        assert status == 400 and "unknown fields" in body["error"]
        status, body = await http.request("POST", "/v1/models/strict/predict", request)
        assert status == 409 and "no champion" in body["error"]
        status, body = await http.request(
            "POST", "/v1/models/delay/predict", {"features": {"x": [1, "a"]}}
        )
        assert status == 400 and "features.x[1]" in body["error"]

        # A manual promotion swaps the model under a steady stream of requests, none dropped.
        cli(stack, "train", "loose", "--model", "delay", "--holdout", "0.5")
        stop = asyncio.Event()
        seen: list[str] = []

        async def keep_asking() -> None:
            while not stop.is_set():
                seen.append((await http.predict("delay", [request]))["model_version"])

        askers = [asyncio.ensure_future(keep_asking()) for _ in range(4)]
        # In a thread: the askers go on asking while the command runs.
        await asyncio.to_thread(cli, stack, "models", "promote", "delay", "2")
        await wait_until(lambda: seen[-4:] == ["2"] * 4, within=30, what="version 2 serving")
        await asyncio.to_thread(cli, stack, "models", "rollback", "delay")
        await wait_until(lambda: seen[-4:] == ["1"] * 4, within=30, what="back to version 1")
        stop.set()
        await asyncio.gather(*askers)  # any failed request raises here
        assert "2" in seen and seen[0] == "1"
        entry = await registry("delay")
        assert entry["champion"] == "1" and entry["champions"] == ["1"]


async def test_validation_reports_the_future_apart_and_the_gate_decides_on_it(
    stack: Settings,
) -> None:
    past = served_events("future", 200, 500.0, seed=3)
    await publish(stack, past)
    cli(stack, "train", "future", "--holdout", "0.5")
    # Labeled after the snapshot, and occurred after every row of it: out of time.
    await publish(stack, served_events("future", 120, 500.0, seed=4, days_ago=6))
    report = orjson.loads(cli(stack, "validate", "future", "1", "--gate", "--json"))
    split = report["periods"]
    # What the version was fitted on is known from the ids (the holdout is by their hash):
    # its held-out rows later than its last fitted one are out of time too.
    times = {
        e["event_id"]: parse_time(e["occurred_at"])
        for topic, _, raw in past
        if topic == PREDICTIONS and (e := orjson.loads(raw))
    }
    fitted = [t for i, t in times.items() if not in_holdout(i, 0.5)]
    held = [t for i, t in times.items() if in_holdout(i, 0.5)]
    later_held = sum(1 for t in held if t > max(fitted))
    assert split["trained_until"] == format_time(max(fitted))
    assert split["out_of_time"]["n"] == 120 + later_held
    assert split["in_time"]["n"] == len(held) - later_held == report["n"] - 120 - later_held
    assert split["in_time"]["last_event_at"] <= split["trained_until"]
    assert split["trained_until"] < split["out_of_time"]["first_event_at"]
    assert report["decided_on"] == "out_of_time"
    decision = report["decision"]
    assert decision["promote"] is True
    assert decision["reasons"][-1].startswith(
        f"decided on the {120 + later_held} out-of-time events"
    )

    # Leaving the last two days out of the fit makes them out-of-time events too.
    cli(stack, "train", "future", "--model", "recent", "--leave-recent-hours", "48")
    trained = await version_manifest(stack, "recent", 1)
    assert trained.fit_until is not None
    later = await publish_times(stack, "future", after=trained.fit_until)
    assert 0 < len(later) < 320 and trained.train_rows <= 320 - len(later)
    report = orjson.loads(cli(stack, "validate", "recent", "1", "--gate", "--json"))
    split = report["periods"]
    assert split["trained_until"] < trained.fit_until
    assert split["out_of_time"]["n"] >= len(later)


async def publish_times(settings: Settings, dataset: str, after: str) -> list[str]:
    """The logged predictions tagged into `dataset` that occurred after `after`."""
    logged = await kafka_records(settings, [PREDICTIONS, TAGS])
    tagged = {
        orjson.loads(value)["event_id"]
        for (topic, _, _), (_, value, _) in logged.items()
        if topic == TAGS and dataset in orjson.loads(value).get("datasets", [])
    }
    cut = parse_time(after)
    return [
        event["occurred_at"]
        for (topic, _, _), (_, value, _) in logged.items()
        if topic == PREDICTIONS
        and (event := orjson.loads(value))["event_id"] in tagged
        and parse_time(event["occurred_at"]) > cut
    ]


async def dashboard_draws(url: str, tmp_path: Path) -> None:
    """The dashboard in headless Chromium, on this test's data: plots, no console error."""
    assert CHROMIUM_INSTALLED, "scripts/test.sh installs Debian's chromium"
    async with Browser() as browser:
        await browser.goto(url + "/dashboard")
        # A line per version and day, growth lines, validation bars per segment.
        await rendered(browser, 4)
        text = await browser.evaluate("document.body.innerText")
        assert "model delay: champion v1" in text and "loose" in text, text
        assert "model strict" in text and "rejected" in text, text
        assert "latest validation: v1 against the logged predictions" in text, text
        bars = await browser.evaluate("document.querySelectorAll('svg.bars .series').length")
        assert bars >= 4  # UA and DL, replayed and served, per model
        lines = await browser.evaluate(
            "[...document.querySelectorAll('svg.line polyline')]"
            ".map(p => p.getAttribute('points').split(' ').length)"
        )
        assert lines and max(lines) >= 5, lines  # the events span five days
        served = await browser.evaluate("document.getElementById('served').textContent")
        assert int(served) >= 200, served
        assert await browser.screenshot(tmp_path / "dashboard.png") > 20_000
        assert browser.errors == [], browser.errors


async def _champion_is(registry: Any, model: str, version: str) -> bool:
    return bool((await registry(model)).get("champion") == version)
