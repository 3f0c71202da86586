"""Lineage back from an event, on the real stack with two workers: any worker answers for any
event or tag, from the index made when the snapshot was taken and the validation ran."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from app.client import HttpClient
from app.domain.datasets import in_holdout
from app.models.training import version_manifest
from app.settings import Settings
from app.topics import LINEAGE, PREDICTIONS, TAGS
from tests import factories
from tests.coldlog import publish
from tests.e2e.test_fuzz import dead_letters
from tests.e2e.test_serving import cli, served_events
from tests.services import WorkerProcess, member_settings, run_cli, wait_cluster_ready
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
HOLDOUT = 0.3
ANSWER = ("event_ids", "tag_ids", "snapshots", "versions", "validations")


async def test_any_worker_traces_an_event_or_its_tag_to_snapshots_versions_and_validations(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    members = [worker(s, alone=False) for s in member_settings(stack, 2)]
    await asyncio.to_thread(wait_cluster_ready, members)
    records = served_events("flights", 120, 2.0, seed=5)
    # Predicted, never tagged: in no dataset, so in no snapshot.
    untagged = factories.prediction(model="delay")
    records.append((PREDICTIONS, untagged["event_id"].encode(), orjson.dumps(untagged)))
    # A record the lineage agent cannot fold: dead-lettered with its reason, nothing stops.
    records.append((LINEAGE, b"someone", b"{not json"))
    await publish(stack, records)
    tags = {
        orjson.loads(v)["event_id"]: orjson.loads(v)["tag_id"] for t, _, v in records if t == TAGS
    }
    held = sorted(e for e in tags if in_holdout(e, HOLDOUT))
    fitted = sorted(e for e in tags if not in_holdout(e, HOLDOUT))
    assert held and fitted

    cli(stack, "train", "flights", "--model", "delay", "--holdout", str(HOLDOUT))
    cli(stack, "validate", "delay", "1")
    # The same rows again: the same snapshot, which a second version is fitted on too.
    cli(stack, "train", "flights", "--model", "delay", "--holdout", str(HOLDOUT))
    snapshot_id = (await version_manifest(stack, "delay", 1)).snapshot.snapshot_id
    assert (await version_manifest(stack, "delay", 2)).snapshot.snapshot_id == snapshot_id

    async def lineage(url: str, path: str) -> dict[str, Any]:
        async with HttpClient(url) as http:
            status, body = await http.get(path)
        assert status == 200, body
        return body

    async def indexed() -> bool:
        found = await lineage(members[0].url, f"/v1/predictions/{held[0]}/lineage")
        return len(found["versions"]) == 2 and len(found["validations"]) == 1

    await wait_until(indexed, within=60, what="the held-out event's lineage indexed")

    for event_id, was_fitted in ((held[0], False), (fitted[0], True)):
        answers = [await lineage(m.url, f"/v1/predictions/{event_id}/lineage") for m in members]
        assert answers[0] == answers[1]  # whichever worker holds the key, either answers
        found = answers[0]
        assert found["event_ids"] == [event_id] and found["tag_ids"] == [tags[event_id]]
        assert [(s["dataset"], s["snapshot_id"], s["holdout"]) for s in found["snapshots"]] == [
            ("flights", snapshot_id, not was_fitted)
        ]
        assert [(v["model"], v["version"], v["fitted"]) for v in found["versions"]] == [
            ("delay", "1", was_fitted),
            ("delay", "2", was_fitted),
        ]
        # Validation replays the events version 1 was not fitted on: the held-out ones.
        validated = [(v["model"], v["version"]) for v in found["validations"]]
        assert validated == ([] if was_fitted else [("delay", "1")])
        for m in members:
            by_tag = await lineage(m.url, f"/v1/tags/{tags[event_id]}/lineage")
            assert by_tag["tag_id"] == tags[event_id]
            assert {k: by_tag[k] for k in ANSWER} == {k: found[k] for k in ANSWER}

    nothing = await lineage(members[1].url, f"/v1/predictions/{untagged['event_id']}/lineage")
    assert (nothing["snapshots"], nothing["versions"], nothing["validations"]) == ([], [], [])

    # The command line asks a worker, as a user would.
    shown = run_cli(stack, "lineage", held[0], "--url", members[1].url)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"in snapshot {snapshot_id} of flights" in shown.stdout, shown.stdout
    assert "delay version 2 (trained): not fitted on it" in shown.stdout, shown.stdout
    assert "validated delay version 1" in shown.stdout, shown.stdout
    shown = run_cli(stack, "lineage", tags[fitted[0]], "--tag", "--json", "--url", members[0].url)
    assert orjson.loads(shown.stdout)["event_ids"] == [fitted[0]], shown.stdout

    letters = [
        letter for letter in await dead_letters(stack, 1) if letter["source"]["topic"] == LINEAGE
    ]
    assert [letter["reason"][:8] for letter in letters] == ["not JSON"], letters
