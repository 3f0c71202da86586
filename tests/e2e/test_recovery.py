"""Local table state the log no longer backs is discarded, never trusted: after kill -9, after a broker reset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.client import HttpClient, KafkaPublisher
from app.settings import Settings
from app.stack import Stack
from tests.e2e.workload import MODELS, build
from tests.reference import assert_close
from tests.services import WorkerProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


async def publish_all(settings: Settings, n: int, seed: int) -> tuple[int, Any]:
    workload = build(n_predictions=n, seed=seed)
    valid = [i for i in workload.items if i.event is not None]
    async with KafkaPublisher(settings.bootstrap_servers) as kafka:
        for item in valid:
            send = kafka.predictions if item.kind == "prediction" else kafka.tags
            await send([item.event])  # type: ignore[list-item]
    return len(valid), workload.reference


async def processed(process: WorkerProcess, total: int) -> None:
    def done() -> bool:
        counts: dict[str, int] = (process.health() or {}).get("ingest", {})  # type: ignore[assignment]
        return counts.get("applied", 0) + counts.get("duplicates", 0) >= total

    await wait_until(done, within=120, what=f"{total} records processed")


async def check_views(process: WorkerProcess, reference: Any) -> None:
    async with HttpClient(process.url) as http:
        for model in MODELS:
            status, body = await http.get(f"/v1/models/{model}/metrics")
            assert status == 200, body
            assert_close(body["versions"], reference.metrics(model), model)
        for name, want in reference.datasets().items():
            status, body = await http.get(f"/v1/datasets/{name}")
            assert_close(body, want, name)


async def test_kill_9_then_restart_rebuilds_from_the_changelog(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    process = worker()
    total, reference = await publish_all(stack, 600, seed=3)
    await processed(process, total)
    process.kill()
    again = worker()
    assert "did not stop cleanly" in again.log_path.read_text()
    # Records whose table writes had not reached the changelog were not committed either:
    # they are folded again, and skipped where they had been.
    again.wait_caught_up()
    await check_views(again, reference)


async def test_broker_that_lost_its_log_gets_it_back_and_refolds(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    process = worker()
    total, reference = await publish_all(stack, 300, seed=4)
    await processed(process, total)
    assert process.stop() == 0  # a clean stop flushes every record to S3
    local = Stack(stack)
    local.down()
    assert local.up() == total  # the local broker kept nothing; S3 gives it all back
    again = worker()
    assert "the broker has lost the log" in again.log_path.read_text()
    again.wait_caught_up()
    await check_views(again, reference)
