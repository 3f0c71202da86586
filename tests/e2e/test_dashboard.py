"""The dashboard in headless Chromium: it renders plots of real data, with no console error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.client import HttpClient
from app.settings import Settings
from tests.browser import CHROMIUM, Browser
from tests.coldlog import publish
from tests.e2e.test_serving import cli, served_events
from tests.services import WorkerProcess

pytestmark = pytest.mark.e2e
INSTALLED = Path(CHROMIUM).exists()


async def test_the_dashboard_draws_models_datasets_and_validation(
    stack: Settings, worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    assert INSTALLED, "scripts/test.sh installs Debian's chromium"
    process = worker()
    await publish(stack, served_events("loose", 300, 500.0, seed=2))
    cli(stack, "train", "loose", "--model", "delay", "--holdout", "0.5")
    await asyncio.to_thread(
        cli, stack, "validate", "delay", "1", "--gate", "--segment-by", "carrier"
    )
    async with HttpClient(process.url) as http:
        deadline = time.monotonic() + 30
        while (await http.get("/v1/models/delay"))[1].get("champion") != "1":
            assert time.monotonic() < deadline, "the registry did not fold the promotion"
            await asyncio.sleep(0.2)
        await http.predict("delay", [{"features": {"distance": 120, "carrier": "UA"}}] * 5)
    process.wait_caught_up()

    async with Browser() as browser:
        await browser.goto(process.url + "/dashboard")
        deadline = time.monotonic() + 60
        # Rendered: a line per version, growth lines, and validation bars per segment.
        while int(await browser.evaluate("document.body.dataset.rendered || 0")) < 4:
            assert time.monotonic() < deadline, f"no plots rendered; console: {browser.errors}"
            await asyncio.sleep(0.2)
        text = await browser.evaluate("document.body.innerText")
        assert "model delay" in text and "champion" in text and "loose" in text, text
        assert "latest validation: v1" in text and "by feature:carrier" in text, text
        bars = await browser.evaluate("document.querySelectorAll('svg.bars .series').length")
        assert bars >= 4  # UA and DL, challenger and served
        lines = await browser.evaluate(
            "[...document.querySelectorAll('svg.line polyline')].map(p => p.getAttribute('points').split(' ').length)"
        )
        assert lines and max(lines) >= 5, lines  # the events span five days
        served = await browser.evaluate("document.getElementById('served').textContent")
        assert served == "5"
        size = await browser.screenshot(tmp_path / "dashboard.png")
        assert size > 20_000
        assert browser.errors == [], browser.errors
