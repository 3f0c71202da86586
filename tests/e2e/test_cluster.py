"""Three workers answer as one: every read, from any of them, equals the fold of the log.

Also while the cluster changes under a stream of events: a worker killed with -9, a fourth
started, one stopped cleanly. Nothing is lost or counted twice, and the group's committed
offsets reach the log's end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from app.client import HttpClient, KafkaPublisher
from app.settings import Settings
from tests.coldlog import publish
from tests.e2e.test_ingest import check_against_reference, send_kafka
from tests.e2e.test_recovery import wait_committed_to_the_end
from tests.e2e.test_training import labeled, records
from tests.e2e.workload import MODELS, Item, Workload, build
from tests.services import (
    WorkerProcess,
    member_settings,
    run_cli,
    wait_cluster_caught_up,
    wait_cluster_ready,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


async def cluster_views(url: str) -> dict[str, Any]:
    """Every aggregate read a user makes, from one worker."""
    async with HttpClient(url) as http:
        status, datasets = await http.get("/v1/datasets")
        assert status == 200, datasets
        out: dict[str, Any] = {"datasets": datasets}
        for name in sorted(d["name"] for d in datasets["datasets"]):
            status, out[f"dataset:{name}"] = await http.get(f"/v1/datasets/{name}")
            assert status == 200
        for model in MODELS:
            status, out[model] = await http.get(f"/v1/models/{model}/metrics")
            assert status == 200, out[model]
        status, out["models"] = await http.get("/v1/models")
        assert status == 200, out["models"]
        for entry in out["models"]["models"]:
            status, out[f"model:{entry['model']}"] = await http.get(f"/v1/models/{entry['model']}")
            assert status == 200
        return out


async def all_equal(workers: list[WorkerProcess], workload: Workload) -> dict[str, Any]:
    answers = [await cluster_views(w.url) for w in workers]
    for other in answers[1:]:
        assert other == answers[0]  # identical, not merely close: one answer, any worker
    check_against_reference(answers[0], workload)
    return answers[0]


async def test_three_workers_answer_as_one(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    members = [worker(s, alone=False) for s in member_settings(stack, 3)]
    await asyncio.to_thread(wait_cluster_ready, members)
    # Started together on a fresh broker: one opened the log's epoch (restore, forget the
    # views, mark), the others waited for it instead of dropping the changelog it made.
    logs = [m.log_path.read_text(errors="replace") for m in members]
    assert sum("log epoch opened by this worker" in text for text in logs) == 1
    # The e2e workload: duplicates, tags before predictions, corrections, malformed records.
    workload = build(n_predictions=2_000, seed=41)
    async with KafkaPublisher(stack.bootstrap_servers, validate=False) as kafka:
        await send_kafka(kafka, workload.items)
    await asyncio.to_thread(wait_cluster_caught_up, members)
    # A model in the registry, whose model-events partition only one worker holds.
    dataset = sorted(workload.reference.datasets())[0]
    trained = run_cli(stack, "train", dataset, "--model", "cluster-model")
    assert trained.returncode == 0, trained.stdout + trained.stderr

    async def registered_everywhere() -> bool:
        for member in members:
            async with HttpClient(member.url) as http:
                status, _ = await http.get("/v1/models/cluster-model")
                if status != 200:
                    return False
        return True

    await wait_until(registered_everywhere, within=30, what="the model readable from each")
    views = await all_equal(members, workload)
    assert [m["model"] for m in views["models"]["models"]] == ["cluster-model"]
    assert views["model:cluster-model"]["versions"][0]["version"] == "1"


async def test_kill_start_and_stop_while_events_flow_lose_and_double_nothing(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    rng = random.Random(53)
    settings = member_settings(stack, 4)
    members = [worker(s, alone=False) for s in settings[:3]]
    await asyncio.to_thread(wait_cluster_ready, members)
    workload = build(n_predictions=1_500, seed=53)
    items = workload.items

    # A third of the stream before each change goes on: before the kill, between the kill
    # and the leave, and after it. So records flow through every change, whatever the speed.
    killed, left = asyncio.Event(), asyncio.Event()
    third = len(items) // 3

    async def stream() -> None:
        async with KafkaPublisher(stack.bootstrap_servers, validate=False) as kafka:
            for part, gate in ((items[:third], killed), (items[third : 2 * third], left)):
                await paced(kafka, part)
                await gate.wait()
            await paced(kafka, items[2 * third :])

    async def paced(kafka: KafkaPublisher, part: list[Item]) -> None:
        for start in range(0, len(part), 40):
            await send_kafka(kafka, part[start : start + 40])
            await asyncio.sleep(0.1)  # paced: a stream, not one burst

    publishing = asyncio.create_task(stream())

    async def some_flowed(at_least: int) -> None:
        def count() -> int:
            return sum(
                sum((m.health() or {}).get("ingest", {}).get(k, 0) for k in ("applied",))  # type: ignore[union-attr]
                for m in members
                if m.process is not None and m.process.poll() is None
            )

        await wait_until(lambda: count() >= at_least, within=90, what=f"{at_least} folded")

    await some_flowed(rng.randint(100, 400))
    victim = members.pop(rng.randrange(3))
    victim.kill()
    killed.set()
    await some_flowed(rng.randint(100, 300))
    members.append(worker(settings[3], alone=False))
    await asyncio.to_thread(wait_cluster_ready, members, 180.0)
    leaving = members.pop(rng.randrange(len(members)))
    assert leaving.stop() == 0
    assert not publishing.done(), "the last third waits for the leave"
    left.set()
    await publishing
    await asyncio.to_thread(wait_cluster_caught_up, members, 240.0)
    await all_equal(members, workload)
    await wait_committed_to_the_end(stack)


async def test_retraining_counts_the_clusters_labels_and_trains_once(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    """60 labels spread over three workers' partitions: the leader alone holds about a third,
    so only a cluster-wide count reaches the threshold of 50, and one worker trains once."""
    settings = stack.with_(retrain_min_labels=50)
    members = [worker(s, alone=False) for s in member_settings(settings, 3)]
    await asyncio.to_thread(wait_cluster_ready, members)
    predictions, tags = labeled(60, 0)
    await publish(settings, records(predictions, tags))

    async def judged() -> bool:
        async with HttpClient(members[0].url) as http:
            status, body = await http.get("/v1/models/flights-train")
        return status == 200 and [v["status"] for v in body["versions"]] == ["rejected"]

    await wait_until(judged, within=180, what="one version trained, validated and judged")

    def trainings() -> list[dict[str, Any]]:
        return [(m.health() or {}).get("training", {}) for m in members]

    await wait_until(
        lambda: not any(t.get("running") for t in trainings()), within=60, what="all idle"
    )
    assert sum(t["completed"] for t in trainings()) == 1, trainings()
    assert sum(t["failures"] for t in trainings()) == 0
