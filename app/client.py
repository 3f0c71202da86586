"""A small async client for applications: publish predictions and tags over Kafka or HTTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import numpy as np
import orjson
import pyarrow as pa
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from app.domain.codec import (
    InvalidEvent,
    prediction_from_dict,
    prediction_to_dict,
    tag_from_dict,
    tag_to_dict,
)
from app.domain.events import PredictionEvent, TagEvent
from app.partitioning import partitions
from app.record_batch import record_batches
from app.topics import PREDICTIONS, TAGS

Event = PredictionEvent | TagEvent | Mapping[str, Any]
BATCH_BYTES = 1024 * 1024 - 4096  # a topic takes a megabyte a record batch (Kafka's default)


class PublishError(RuntimeError):
    """The events were refused; `details` says which and why."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class Publisher(Protocol):
    async def predictions(self, events: Iterable[Event]) -> list[str]: ...
    async def tags(self, events: Iterable[Event]) -> list[str]: ...


def _as_dict(event: Event) -> dict[str, Any]:
    if isinstance(event, PredictionEvent):
        return prediction_to_dict(event)
    if isinstance(event, TagEvent):
        return tag_to_dict(event)
    return dict(event)


class KafkaPublisher:
    """Publishes straight to the topics, keyed by the prediction's event_id; validates first."""

    def __init__(self, bootstrap_servers: str, validate: bool = True) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.validate = validate
        self._producer: AIOKafkaProducer | None = None
        self._queued: asyncio.Future[Any] | None = None  # `queue_keyed`'s last handing over

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            missing = {PREDICTIONS, TAGS} - set(await admin.list_topics())
        finally:
            await admin.close()
        if missing:
            # Auto-created topics get the broker's default partition count, which breaks the
            # co-partitioning of predictions and tags: let the worker create them.
            raise PublishError(f"topics {sorted(missing)} do not exist yet: start a worker first")
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            linger_ms=5,
            # One produce request carries a batch per partition: at the default 16 kB, a
            # local broker's round trip caps a publisher near 20 MB/s.
            max_batch_size=BATCH_BYTES,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._queued is not None:  # hand every queued batch over: stop flushes them
            await asyncio.wait([self._queued])
            self._queued = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> KafkaPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def predictions(self, events: Iterable[Event]) -> list[str]:
        return await self.send_raw(PREDICTIONS, [_as_dict(e) for e in events])

    async def tags(self, events: Iterable[Event]) -> list[str]:
        return await self.send_raw(TAGS, [_as_dict(e) for e in events])

    async def send_raw(
        self, topic: str, items: Sequence[Any], key: bytes | None = None
    ) -> list[str]:
        """Send JSON items (or raw bytes, unvalidated) and wait until the broker has them all."""
        assert self._producer is not None, "call start() first"
        parse = prediction_from_dict if topic == PREDICTIONS else tag_from_dict
        futures, ids = [], []
        for item in items:
            if isinstance(item, bytes):
                value, item_key = item, key
            else:
                if self.validate:
                    try:
                        parse(item)
                    except InvalidEvent as exc:
                        raise PublishError(f"invalid event: {exc}", item) from None
                value, item_key = orjson.dumps(item), key or str(item.get("event_id", "")).encode()
                ids.append(str(item.get("tag_id") or item.get("event_id")))
            futures.append(await self._producer.send(topic, value=value, key=item_key))
        for future in futures:
            await future
        return ids

    async def send_records(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send raw (key, value) records, unvalidated, in order, and wait until the broker
        has them all: one round of acks for the lot, not one per record."""
        assert self._producer is not None, "call start() first"
        futures = [await self._producer.send(topic, value=v, key=k) for k, v in records]
        for future in futures:
            await future

    async def queue_keyed(
        self, topic: str, keys: Sequence[bytes] | pa.Array, values: Sequence[bytes] | pa.Array
    ) -> asyncio.Future[Any]:
        """Queue keyed records where `send` would put them; the future is done once the
        broker has them all. Made into whole record batches here, a partition at a time,
        from columns (`app.record_batch`), which costs well under a µs a record instead of
        `send`'s fifty (batch scoring sends millions). The batches are handed to the
        producer in the background: it holds one a partition until the broker's last
        answer, and the caller meanwhile makes the next records. Queued calls go out in the
        order they were made."""
        producer = self._producer
        assert producer is not None, "call start() first"
        count = len(await producer.partitions_for(topic))
        keys = keys if isinstance(keys, pa.Array) else pa.array(keys, pa.binary())
        values = values if isinstance(values, pa.Array) else pa.array(values, pa.binary())
        try:
            owner = partitions(keys, count)
        except ValueError as exc:
            raise PublishError(str(exc)) from None
        # Made in a thread (Arrow, numpy and the checksum leave it free to run beside the
        # caller, who meanwhile makes the next records); handed over in order.
        building = asyncio.ensure_future(asyncio.to_thread(_batches, keys, values, owner))
        before = self._queued

        async def queue() -> list[asyncio.Future[Any]]:
            batches = await building
            if before is not None:  # its order, not its outcome: the caller hears of that
                await asyncio.wait([before])
            return [await producer.send_batch(b, topic, partition=p) for p, b in batches]

        self._queued = queued = asyncio.ensure_future(queue())

        async def acked() -> list[Any]:
            return await asyncio.gather(*await queued)

        return asyncio.ensure_future(acked())


def _batches(keys: pa.Array, values: pa.Array, owner: np.ndarray) -> list[tuple[int, Any]]:
    """Each partition's records (`owner[i]` is record i's) as record batches, in order; a
    partition's batches round-robin with the others', so that each produce request carries
    one of every partition's."""
    order = np.argsort(owner, kind="stable")
    owner = owner[order]
    keys, values = keys.take(order), values.take(order)
    built = []
    for partition in np.unique(owner).tolist():
        first, stop = np.searchsorted(owner, [partition, partition + 1]).tolist()
        mine = record_batches(
            keys.slice(first, stop - first), values.slice(first, stop - first), BATCH_BYTES
        )
        built.append([(partition, batch) for batch in mine])
    return [sent for one in itertools.zip_longest(*built) for sent in one if sent is not None]


class HttpClient:
    """The worker's HTTP API: publish, predict, and read the views."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def predictions(self, events: Iterable[Event]) -> list[str]:
        return await self._publish("/v1/predictions", [_as_dict(e) for e in events])

    async def tags(self, events: Iterable[Event]) -> list[str]:
        return await self._publish("/v1/tags", [_as_dict(e) for e in events])

    async def predict(self, model: str, requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Ask the model's champion; each answer carries the event_id to tag later."""
        status, body = await self.request("POST", f"/v1/models/{model}/predict", list(requests))
        if status != 200:
            raise PublishError(
                f"predict answered {status}: {body.get('error')}", body.get("details")
            )
        return dict(body)

    async def _publish(self, path: str, items: list[dict[str, Any]]) -> list[str]:
        status, body = await self.request("POST", path, items)
        if status != 202:
            raise PublishError(
                f"{path} answered {status}: {body.get('error')}", body.get("details")
            )
        return list(body["accepted"])

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        async with self._session.request(
            method, self.base_url + path, data=data, headers={"content-type": "application/json"}
        ) as response:
            raw = await response.read()
            try:
                return response.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return response.status, {
                    "error": "non-JSON response",
                    "details": raw[:200].decode(errors="replace"),
                }
