"""The same join and counts in Quix Streams: the peer a user would otherwise pick.

Predictions and tags, both keyed by event_id, are joined per key in RocksDB state (the first
prediction kept, the latest tag); each change emits its counts, which are re-keyed by
aggregate (`group_by`, a repartition topic) and summed in state: examples and labeled
examples per model version, size per dataset. Malformed records are counted and dropped.
It runs in a child process so that its librdkafka threads and state are its own.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import orjson

from app.topics import PREDICTIONS, TAGS


def _join(value: dict[str, Any], state: Any) -> list[dict[str, Any]]:
    """One record into its example; the counts it moves (none for a duplicate)."""
    kind = value["kind"]
    example = state.get("example") or {}
    out: list[dict[str, Any]] = []
    if kind == "prediction":
        if "prediction" in example:
            return out  # a duplicate, or an id reused: the first prediction stays
        example["prediction"] = value
        out.append({"agg": f"model/{value['model']}/{value['model_version']}", "n": 1})
        if "tag" in example:
            out.append({"agg": f"model/{value['model']}/{value['model_version']}", "labeled": 1})
    else:
        first = "tag" not in example
        example["tag"] = value
        if first:
            for name in value.get("datasets", []):
                out.append({"agg": f"dataset/{name}", "size": 1})
            prediction = example.get("prediction")
            if prediction is not None:
                agg = f"model/{prediction['model']}/{prediction['model_version']}"
                out.append({"agg": agg, "labeled": 1})
    state.set("example", example)
    return out


def _count(value: dict[str, Any], state: Any) -> dict[str, Any]:
    counts = state.get("counts") or {}
    for name, amount in value.items():
        if name != "agg":
            counts[name] = counts.get(name, 0) + amount
    state.set("counts", counts)
    return counts


def _run(bootstrap: str, total: int, state_dir: str, batch_one: bool, result: Any) -> None:
    from quixstreams import Application

    # Settings this broker needs (LOCAL-SERVICES.md): short sessions; one record per produce
    # request for the restart-safe variant.
    producer = {"batch.num.messages": 1} if batch_one else {}
    seen = {"n": 0, "bad": 0, "first": 0.0}
    inputs = {PREDICTIONS, TAGS}

    def processed(topic: str, partition: int, offset: int) -> None:
        if topic not in inputs:
            return
        if not seen["n"]:
            seen["first"] = time.perf_counter()
        seen["n"] += 1
        if seen["n"] >= total:
            result.put((time.perf_counter() - seen["first"], seen["bad"]))
            app.stop()

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-bench-{int(time.time() * 1000)}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        producer_extra_config=producer,
        on_message_processed=processed,
    )

    def parse(kind: str) -> Any:
        def decode(raw: bytes) -> dict[str, Any] | None:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                seen["bad"] += 1
                return None
            if not isinstance(value, dict):
                seen["bad"] += 1
                return None
            value["kind"] = kind
            return value

        return decode

    frames = []
    for topic, kind in ((PREDICTIONS, "prediction"), (TAGS, "tag")):
        sdf = app.dataframe(app.topic(topic, value_deserializer="bytes"))
        frames.append(sdf.apply(parse(kind)).filter(lambda v: v is not None))
    joined = frames[0].concat(frames[1])
    counts = joined.apply(_join, stateful=True, expand=True)
    counts = counts.group_by(lambda v: v["agg"], name="agg")
    counts.apply(_count, stateful=True)
    app.run()


def set_retention(bootstrap: str) -> None:
    """Retention settings on the input topics: Quix reads them back to derive its own topics'
    settings, and this broker reports only settings given at creation or by
    IncrementalAlterConfigs (LOCAL-SERVICES.md)."""
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    entries = [
        ConfigEntry(name, "-1", incremental_operation=AlterConfigOpType.SET)
        for name in ("retention.ms", "retention.bytes")
    ]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resources = [
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
        for topic in (PREDICTIONS, TAGS)
    ]
    for future in admin.incremental_alter_configs(resources).values():
        future.result(timeout=30)


def run(bootstrap: str, total: int, state_dir: Path, batch_one: bool) -> tuple[float, int]:
    """Seconds from the first input record processed to the last, and malformed records seen."""
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    child = context.Process(target=_run, args=(bootstrap, total, str(state_dir), batch_one, result))
    child.start()
    try:
        seconds, bad = result.get(timeout=900)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
    return seconds, bad
