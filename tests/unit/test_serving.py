"""The Predictor and its capture queue, with a fake broker and fake model loading."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from app.domain.registry import RegistryEntry
from app.learning.base import ConstantModel, Expected
from app.models.serving import Capture, Champions, Predictor, ServingError
from tests.waiting import wait_until

REQUEST = {"features": {"distance": 100}}


class Broker:
    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.acked: list[bytes] = []
        self.attempts = 0

    async def send(self, key: bytes, value: bytes) -> Any:
        self.attempts += 1
        done = asyncio.get_running_loop().create_future()
        if self.attempts <= self.fail_first:
            done.set_exception(ConnectionError("broker away"))
        else:
            self.acked.append(key)
            done.set_result(None)
        return done


def predictor(
    broker: Broker,
    champion: dict[str, str],
    capacity: int = 100,
    gate: Any = None,
    durable: bool = False,
    ack_within: float = 10.0,
) -> Predictor:
    """Async capture unless asked: most of these tests run no sender, and nothing is acked."""

    async def load(model: str, version: str) -> ConstantModel:
        if gate is not None:
            await gate.wait()
        if version == "broken":
            raise OSError("no such artifact")
        return ConstantModel(float(version), "regression", 1)

    async def current(model: str) -> str | None:
        return champion.get(model)

    capture = Capture(broker.send, capacity)
    return Predictor(current, load, capture, 256 * 1024, durable=durable, ack_within=ack_within)


async def test_each_prediction_is_captured_once_even_when_sends_fail_at_first() -> None:
    broker = Broker(fail_first=3)
    served = predictor(broker, {"m": "1"})
    runner = asyncio.ensure_future(served.capture.run())
    answers = [await served.predict("m", [REQUEST, REQUEST]) for _ in range(5)]
    ids = [p["event_id"] for a in answers for p in a["predictions"]]
    await served.capture.drain(within=10)
    runner.cancel()
    assert sorted(broker.acked) == sorted(i.encode() for i in ids) and len(set(ids)) == 10
    assert served.capture.status()["send_failures"] >= 1
    assert answers[0]["predictions"][0]["prediction"] == {"value": 1.0}


async def test_durable_capture_answers_only_what_the_broker_acknowledged() -> None:
    broker = Broker()
    served = predictor(broker, {"m": "1"}, durable=True)
    runner = asyncio.ensure_future(served.capture.run())
    # Concurrent requests: every answer comes after its own event's ack.
    answers = await asyncio.gather(*(served.predict("m", [REQUEST]) for _ in range(50)))
    ids = {a["predictions"][0]["event_id"].encode() for a in answers}
    assert ids <= set(broker.acked) and len(ids) == 50
    # They shared produce rounds: fewer batches than requests (group commit).
    assert served.capture.captured == 50 and served.capture.rounds < 50
    runner.cancel()


async def test_durable_capture_answers_503_in_bounded_time_and_keeps_the_events() -> None:
    broker = Broker(fail_first=10**9)  # the broker is away
    served = predictor(broker, {"m": "1"}, durable=True, ack_within=0.3)
    runner = asyncio.ensure_future(served.capture.run())
    with pytest.raises(ServingError) as away:
        await served.predict("m", [REQUEST, REQUEST])
    assert away.value.status == 503 and "did not acknowledge" in away.value.message
    refused = away.value.details["event_ids"]
    assert served.served == {}  # not counted as served
    broker.fail_first = 0  # back: the queued events still reach the log
    await wait_until(
        lambda: {i.encode() for i in refused} <= set(broker.acked), within=10, what="kept"
    )
    runner.cancel()


async def test_a_full_buffer_refuses_the_whole_batch_with_503() -> None:
    served = predictor(Broker(), {"m": "1"}, capacity=3)  # nothing sends: no runner
    await served.predict("m", [REQUEST, REQUEST])
    with pytest.raises(ServingError) as refused:
        await served.predict("m", [REQUEST, REQUEST])
    assert refused.value.status == 503 and "buffer full" in refused.value.message
    assert len(served.capture.queue) == 2 and served.capture.refused == 2


async def test_the_old_champion_answers_while_the_new_one_loads() -> None:
    champion = {"m": "1"}
    gate = asyncio.Event()
    gate.set()
    served = predictor(Broker(), champion, gate=gate)
    assert (await served.predict("m", [REQUEST]))["model_version"] == "1"
    gate.clear()
    champion["m"] = "2"
    served.champion_changed("m", "2")
    assert (await served.predict("m", [REQUEST]))["model_version"] == "1"  # still loading
    gate.set()
    await wait_until(lambda: served.loaded["m"][0] == "2", within=5, what="version 2 loaded")
    answer = await served.predict("m", [REQUEST])
    assert answer["model_version"] == "2" and answer["predictions"][0]["prediction"]["value"] == 2.0
    captured = [orjson.loads(v) for _, v, _ in served.capture.queue]
    assert [c["model_version"] for c in captured] == ["1", "1", "2"]


async def test_no_champion_a_broken_artifact_and_bad_requests_are_clear_errors() -> None:
    champion: dict[str, str] = {}
    served = predictor(Broker(), champion)
    with pytest.raises(ServingError) as none:
        await served.predict("m", [REQUEST])
    assert none.value.status == 409
    champion["m"] = "broken"
    with pytest.raises(ServingError) as broken:
        await served.predict("m", [REQUEST])
    assert broken.value.status == 503 and "cannot load" in broken.value.message
    champion["m"] = "1"
    for bad, why in (
        ({"features": {"x": float("nan")}}, "finite"),
        ({"features": {}, "color": 1}, "unknown fields"),
        ({"features": {}, "event_id": "nope"}, "event_id"),
        ("text", "must be an object"),
    ):
        with pytest.raises(ServingError) as refused:
            await served.predict("m", [REQUEST, bad])
        assert refused.value.status == 400 and why in refused.value.message, refused.value.message
        assert refused.value.details == {"index": 1}
    assert not served.capture.queue  # nothing of a refused batch is captured


async def test_champions_come_from_the_local_registry_or_else_from_the_log_for_a_while() -> None:
    def champion(model: str, version: str) -> RegistryEntry:
        return RegistryEntry(model, champion=version)

    local = {"here": champion("here", "3")}
    log = {"here": champion("here", "9"), "there": champion("there", "2")}
    folds = 0

    async def from_log() -> dict[str, RegistryEntry]:
        nonlocal folds
        folds += 1
        return dict(log)

    champions = Champions(local.get, from_log, ttl=60)
    assert await champions("here") == "3" and folds == 0  # the local partition answers
    assert await champions("there") == "2" and await champions("nowhere") is None
    assert await champions("elsewhere") is None and folds == 1  # one fold for all models
    log["there"] = champion("there", "4")
    champions.ttl = 0
    assert await champions("there") == "4" and folds == 2  # after the ttl: the log again


async def test_a_retried_event_id_gets_the_prediction_already_made() -> None:
    broker = Broker()
    champion = {"m": "1"}
    old = "5b8f4c2e-3d0a-4f5e-8b1c-2a6e9f0d7c3b"
    logged = {
        old: {
            "model": "m",
            "model_version": "0",
            "features": {"distance": 100},
            "prediction": {"value": 7.0},
        },
    }

    async def lookup(event_id: str) -> Any:
        return logged.get(event_id)

    served = predictor(broker, champion, durable=True)
    served.lookup = lookup
    runner = asyncio.ensure_future(served.capture.run())
    eid = "9d3c5a56-1f43-4a8e-9d89-0c8f7ab7f4a1"
    first = await served.predict("m", [{**REQUEST, "event_id": eid}])
    champion["m"] = "2"  # a promotion in between: the retry still gets version 1's answer
    again = await served.predict("m", [{**REQUEST, "event_id": eid}])
    assert again["predictions"] == first["predictions"]
    assert again["predictions"][0]["model_version"] == "1"
    assert broker.acked.count(eid.encode()) == 1  # captured once
    with pytest.raises(ServingError) as other:
        await served.predict("m", [{"features": {"distance": 5}, "event_id": eid}])
    assert other.value.status == 409 and other.value.details["index"] == 0
    # Made before this worker's life: read back from the views.
    from_views = await served.predict("m", [{**REQUEST, "event_id": old}])
    assert from_views["predictions"][0] == {
        "event_id": old,
        "model_version": "0",
        "prediction": {"value": 7.0},
    }
    assert old.encode() not in broker.acked
    runner.cancel()


class Picky(ConstantModel):
    """A constant model that reads `distance`, a number, and `carrier`, a string."""

    def expects(self) -> Expected:
        return Expected(frozenset({"distance"}), frozenset({"carrier"}))


def test_expected_names_each_wrong_type_and_each_missing_feature() -> None:
    expected = Picky(0.0, "regression", 1).expects()
    assert expected.check({"distance": 3, "carrier": "UA", "extra": [1]}) == ({}, [])
    assert expected.check({"distance": True, "carrier": "UA"}) == ({}, [])  # bools are numbers
    assert expected.check({"carrier": "UA"}) == ({}, ["distance"])
    assert expected.check({"distance": None, "carrier": None}) == ({}, ["carrier", "distance"])
    assert expected.check({"distance": "far", "carrier": 7}) == (
        {"carrier": "expected a string, got int", "distance": "expected a number, got str"},
        [],
    )


def test_a_batch_checked_a_feature_at_a_time_finds_what_each_row_alone_finds() -> None:
    """Batch scoring checks a column at once; it must name exactly what `check` of each
    row names, wherever the odd row sits in the batch."""
    expected = Picky(0.0, "regression", 1).expects()
    odd = [
        {"distance": "far", "carrier": 7},
        {"carrier": "UA"},
        {"distance": None, "carrier": None},
        {"distance": True, "carrier": "UA"},
        {"distance": 2.5, "carrier": b"UA"},
    ]
    good = {"distance": 3, "carrier": "UA"}
    for at in (0, 3, 9):
        batch = [good] * at + odd + [good] * 2
        problems, missing = expected.check_all(batch)
        alone = [expected.check(row) for row in batch]
        assert problems == {i: p for i, (p, _) in enumerate(alone) if p}
        assert missing == {i: m for i, (_, m) in enumerate(alone) if m}
        assert sorted(problems) == [at, at + 4] and sorted(missing) == [at + 1, at + 2]
    assert expected.check_all([good] * 5) == ({}, {})


async def test_a_request_the_model_cannot_read_is_refused_with_400_and_not_captured() -> None:
    async def current(model: str) -> str | None:
        return "1"

    async def load(model: str, version: str) -> Picky:
        return Picky(5.0, "regression", 1)

    served = Predictor(current, load, Capture(Broker().send, 100), 256 * 1024, durable=False)
    good = {"features": {"distance": 1, "carrier": "UA"}}
    with pytest.raises(ServingError) as refused:
        await served.predict("m", [good, {"features": {"distance": "far", "carrier": "UA"}}])
    assert refused.value.status == 400
    assert refused.value.details == {
        "index": 1,
        "model_version": "1",
        "features": {"distance": "expected a number, got str"},
    }
    assert "distance: expected a number, got str" in refused.value.message
    # None of the features the model reads (a misspelt name, say): refused too.
    with pytest.raises(ServingError) as refused:
        await served.predict("m", [{"features": {"distnace": 1}}])
    assert refused.value.details["features"] == {"carrier": "missing", "distance": "missing"}
    assert len(served.capture.queue) == 0  # nothing of either batch was captured

    # One missing feature is imputed: the answer and the captured event both name it.
    answer = await served.predict("m", [{"features": {"carrier": "UA"}, "context": {"a": 1}}])
    assert answer["predictions"][0]["imputed"] == ["distance"]
    assert "imputed" not in (await served.predict("m", [good]))["predictions"][0]
    (_, raw, _), *_ = served.capture.queue
    assert orjson.loads(raw)["context"] == {"a": 1, "modelview.imputed": ["distance"]}
