"""Models as views, on the real stack: snapshot from the log, train, lineage, reproduce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from app.client import HttpClient
from app.domain.model_events import encode
from app.models.training import version_manifest
from app.s3 import s3_client
from app.settings import Settings
from app.topics import DEAD_LETTERS, MODEL_EVENTS, PREDICTIONS, TAGS
from tests import factories
from tests.coldlog import kafka_records, publish
from tests.services import WorkerProcess, run_cli
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def labeled(n: int, start: int, dataset: str = "flights-train") -> tuple[list[dict], list[dict]]:
    predictions = [
        factories.prediction(
            occurred_at=f"2026-11-{1 + (start + i) % 27:02d}T10:00:00Z",
            features={"distance": 100 + start + i, "carrier": "UA" if i % 2 else "DL"},
        )
        for i in range(n)
    ]
    tags = [
        factories.tag(p["event_id"], label=float((start + i) % 7), datasets=[dataset])
        for i, p in enumerate(predictions)
    ]
    return predictions, tags


def records(predictions: list[dict], tags: list[dict]) -> list[tuple[str, bytes, bytes]]:
    return [(PREDICTIONS, p["event_id"].encode(), orjson.dumps(p)) for p in predictions] + [
        (TAGS, t["event_id"].encode(), orjson.dumps(t)) for t in tags
    ]


async def manifest(settings: Settings, model: str, version: int) -> dict[str, Any]:
    """A version's stored manifest, as JSON readers see it."""
    found: dict[str, Any] = orjson.loads(encode(await version_manifest(settings, model, version)))
    return found


async def model_events(settings: Settings) -> list[dict]:
    consumer = AIOKafkaConsumer(
        MODEL_EVENTS,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=2000)
        return [orjson.loads(m.value) for ms in batch.values() for m in ms]
    finally:
        await consumer.stop()


def train(settings: Settings, *args: str) -> str:
    done = run_cli(settings, "train", "flights-train", "--model", "delay", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_train_snapshot_lineage_and_reproduction(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    process = worker()  # folds the model events into the registry view
    # Labeled examples, some unlabeled or in another dataset, which the snapshot leaves out.
    first_p, first_t = labeled(120, 0)
    other_p, other_t = labeled(30, 500, dataset="audit")
    unlabeled = [factories.prediction() for _ in range(10)]
    await publish(stack, records(first_p + other_p + unlabeled, first_t + other_t))

    out = train(stack)
    assert "version 1" in out and "on 120 rows" in out, out
    v1 = await manifest(stack, "delay", 1)
    assert v1["snapshot"]["rows"] == 120 and v1["snapshot"]["parent"] is None
    assert v1["describe"]["value"] == pytest.approx(sum(i % 7 for i in range(120)) / 120)

    # More labels: an incremental version whose manifest names the delta, parent and lineage.
    second_p, second_t = labeled(40, 1000)
    corrected = factories.tag(
        first_p[0]["event_id"],
        label=99.0,
        datasets=["flights-train"],
        tagged_at="2026-11-28T13:00:00Z",
    )
    await publish(stack, records(second_p, [*second_t, corrected]))
    out = train(stack)
    v2 = await manifest(stack, "delay", 2)
    snap = v2["snapshot"]
    assert snap["rows"] == 160 and snap["parent"] == v1["snapshot"]["snapshot_id"]
    assert sorted(snap["delta"]["added"]) == sorted(p["event_id"] for p in second_p)
    assert snap["delta"]["relabeled"] == [first_p[0]["event_id"]]
    assert v2["parent_version"] == "1"
    assert snap["content_hash"] != v1["snapshot"]["content_hash"]
    # Incremental: v2's snapshot read only the records published since v1's offsets.
    assert v1["snapshot"]["incremental"] is False and v1["snapshot"]["read_records"] == 310
    assert snap["incremental"] is True and snap["read_records"] == 81

    # The same as-of offsets give the same rows, whatever the log holds since.
    again = train(stack, "--as-of", orjson.dumps(v1["snapshot"]["as_of"]).decode())
    assert "version 3" in again
    v3 = await manifest(stack, "delay", 3)
    assert v3["snapshot"]["content_hash"] == v1["snapshot"]["content_hash"]

    rebuilt = run_cli(stack, "models", "rebuild", "delay", "2")
    assert rebuilt.returncode == 0 and "matches" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
    assert "weights: bit-identical" in rebuilt.stdout, rebuilt.stdout

    announced = await model_events(stack)
    assert [(e["type"], e["version"]) for e in announced] == [
        ("ModelTrained", "1"),
        ("ModelTrained", "2"),
        ("ModelTrained", "3"),
    ]

    # A narrower spec is its own dataset view: only the predictions from the 20th on.
    since = run_cli(
        stack, "train", "flights-train", "--model", "late-month", "--since", "2026-11-20T00:00:00Z"
    )
    assert since.returncode == 0, since.stdout + since.stderr
    narrow = await manifest(stack, "late-month", 1)
    expected = sum(1 for p in [*first_p, *second_p] if p["occurred_at"] >= "2026-11-20")
    assert narrow["snapshot"]["rows"] == expected and narrow["snapshot"]["spec"]["since"]
    bad = run_cli(stack, "train", "flights-train", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr

    nothing = run_cli(stack, "train", "no-such-dataset")
    assert nothing.returncode == 2 and "no labeled examples" in nothing.stderr

    # The registry view, folded from those events, shows versions and lineage over HTTP.
    async with HttpClient(process.url) as http:

        async def three() -> bool:
            status, body = await http.get("/v1/models/delay")
            return status == 200 and len(body["versions"]) == 3

        await wait_until(three, within=30, what="three versions in the registry")
        _, body = await http.get("/v1/models/delay")
        second = body["versions"][1]
        assert second["version"] == "2" and second["status"] == "trained"
        assert second["parent_version"] == "1"
        assert second["snapshot"]["parent"] == v1["snapshot"]["snapshot_id"]
        assert second["snapshot"]["delta"] == {"added": 40, "relabeled": 1, "removed": 0}
        assert second["snapshot"]["as_of"] == v2["snapshot"]["as_of"]
        _, listing = await http.get("/v1/models")
        assert listing["models"][0] == {
            "model": "delay",
            "champion": None,
            "versions": ["1", "2", "3"],
        }
        status, _ = await http.get("/v1/models/nope")
        assert status == 404

    # A model event nobody can use is dead-lettered with its reason; the agent goes on.
    await publish(stack, [(MODEL_EVENTS, b"delay", b'{"type": "ModelExploded"}')])

    async def dead_lettered() -> bool:
        letters = await kafka_records(stack, [DEAD_LETTERS])
        return any(b"type must be one of" in (v or b"") for _, v, _ in letters.values())

    await wait_until(dead_lettered, within=30, what="the bad model event dead-lettered")


async def test_keras_versions_warm_start_from_the_last_one(
    stack: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    # The worker runs from the start, as in production.
    process = worker()
    first_p, first_t = labeled(200, 0)
    await publish(stack, records(first_p, first_t))
    done = run_cli(stack, "train", "flights-train", "--trainer", "keras", "--seed", "7")
    assert done.returncode == 0, done.stdout + done.stderr
    v1 = await manifest(stack, "flights-train", 1)
    assert v1["describe"]["kind"] == "keras" and v1["warm_start"] is False
    assert v1["describe"]["schema"]["numeric"] == ["distance"]
    assert v1["describe"]["schema"]["strings"] == ["carrier"]

    second_p, second_t = labeled(50, 300)
    await publish(stack, records(second_p, second_t))
    done = run_cli(stack, "train", "flights-train", "--trainer", "keras", "--seed", "7")
    assert done.returncode == 0, done.stdout + done.stderr
    v2 = await manifest(stack, "flights-train", 2)
    assert v2["warm_start"] is True and v2["train_rows"] == 250
    # Longer distances than v1 saw change the normalization, not the weights carried: the
    # distance row and the three carrier rows (DL, UA, unseen).
    assert v2["describe"]["warm_start"] == {
        "reused": True,
        "carried_rows": 4,
        "new_rows": 0,
        "new_classes": 0,
    }
    assert v2["describe"]["hyperparameters"]["patience"] == 5
    assert len(v2["snapshot"]["delta"]["added"]) == 50

    async with s3_client(stack) as client:
        listed = await client.list_objects_v2(
            Bucket=stack.s3_bucket, Prefix="models/flights-train/2/"
        )
    names = {item["Key"].split("/2/", 1)[1] for item in listed["Contents"]}
    assert {"manifest.json", "artifact/model.keras", "artifact/schema.json"} <= names
    assert "artifact/saved_model/saved_model.pb" in names

    # Reproduce v2: the same snapshot hash, and a refit of the chain (v1 from scratch, v2 warm
    # from it, same seeds) predicting the same.
    rebuilt = run_cli(stack, "models", "rebuild", "flights-train", "2")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert (
        "matches" in rebuilt.stdout
        and "refit with the same seed: largest difference" in rebuilt.stdout
    )
    # Same machine, same environment, deterministic ops: the very same weights.
    assert "weights: bit-identical" in rebuilt.stdout, rebuilt.stdout
    assert v2["environment"]["python"] and len(v2["weights_sha256"]) == 64

    # v3: the linear reference, with hyperparameters from the CLI, recorded; never warm.
    bad = run_cli(stack, "train", "flights-train", "--trainer", "linear", "--hyper", "epoch=3")
    assert bad.returncode == 2 and "unknown hyperparameters ['epoch']" in bad.stderr
    done = run_cli(
        stack, "train", "flights-train", "--trainer", "linear", "--hyper", "epochs=5,patience=2"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    v3 = await manifest(stack, "flights-train", 3)
    assert v3["trainer"] == "linear" and v3["warm_start"] is False
    assert v3["describe"]["solver"] == "least squares"
    hyper = v3["describe"]["hyperparameters"]
    assert (hyper["epochs"], hyper["patience"], hyper["hidden"]) == (5, 2, 0)

    # Served: a mistyped feature is a 400 naming it; a missing one is imputed, and said so.
    promoted = run_cli(stack, "models", "promote", "flights-train", "2")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    async with HttpClient(process.url) as http:
        path = "/v1/models/flights-train/predict"

        async def serving() -> bool:
            request = {"features": {"distance": 120, "carrier": "UA"}}
            return (await http.request("POST", path, request))[0] == 200

        await wait_until(serving, within=60, what="version 2 serving")
        status, body = await http.request(
            "POST", path, {"features": {"distance": "far", "carrier": "UA"}}
        )
        assert status == 400, body
        assert body["details"]["features"] == {"distance": "expected a number, got str"}
        status, body = await http.request("POST", path, {"features": {"carrier": "UA"}})
        assert status == 200 and body["imputed"] == ["distance"], body
        imputed_id = body["event_id"].encode()

    async def captured_as_imputed() -> bool:
        logged = await kafka_records(stack, [PREDICTIONS])
        return any(
            key == imputed_id
            and orjson.loads(value)["context"] == {"modelview.imputed": ["distance"]}
            for key, value, _ in logged.values()
        )

    await wait_until(captured_as_imputed, within=30, what="the imputed prediction captured")
