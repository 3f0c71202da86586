"""The erasure agent: folds `modelview.erasures` into the `erasures` table, turns each request
into its orders, and, once the views have carried them out, runs the later stages.

The stages run from a timer on the worker that owns the erasure's partition, not from the
agent: one of them waits for the flusher, and a worker that dies mid-stage leaves the status
as it was, for the next owner's timer to take up. Each stage is idempotent
(`app.erasure_stages`), so a stage run twice across a rebalance does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.registry import Reject
from app.domain import erasure
from app.domain.erasure import ErasureRequested, ErasureStage, ErasureStatus
from app.domain.registry import RegistryEntry
from app.erasure_stages import (
    NotYet,
    flag_versions,
    redact_cold,
    redact_lineage,
    redact_snapshots,
    redact_validations,
)
from app.log.replay import log_end
from app.log.segment_store import segment_store
from app.models.adapters import Adapters
from app.settings import Settings
from app.topic_admin import key_partition, raw_topic
from app.topics import ERASURE_ORDERS, ERASURES, LINEAGE

log = logging.getLogger(__name__)

Registry = Callable[[], Awaitable[dict[str, RegistryEntry]]]


def register(
    app: faust.App,
    table: Any,
    settings: Settings,
    reject: Reject,
    adapters: Adapters,
    registry: Registry,
) -> Any:
    source = raw_topic(app, ERASURES, partitions=settings.partitions)
    orders = raw_topic(app, ERASURE_ORDERS)
    partitions = settings.partitions

    def partition_of(event_id: str) -> int:
        return key_partition(event_id.encode(), partitions)

    async def fold(stream: Any) -> None:
        async for event in stream.events():
            key = event.message.key
            try:
                record = erasure.decode(event.message.value)
                if key != record.erasure_id.encode():
                    raise erasure.InvalidErasure("an erasure record is keyed by its erasure_id")
            except erasure.InvalidErasure as exc:
                await reject(event.message, str(exc))
                continue
            table[key] = erasure.encode_status(
                erasure.fold(erasure.decode_status(table.get(key)), record)
            )
            if isinstance(record, ErasureRequested):
                # A pure function of the request: sent again on a redelivery, the same orders.
                for order in erasure.orders(record, partitions, partition_of):
                    sent = await orders.send(
                        key=key, value=erasure.encode(order), partition=order.partition
                    )
                    await sent

    async def stage(name: str, status: ErasureStatus) -> dict[str, Any]:
        assert status.request is not None
        erased = {p: set(ids) for p, ids in status.erased.items()}
        erasure_id = status.request.erasure_id
        if name == "cold":
            async with segment_store(settings) as cold:
                return await redact_cold(cold, erased, status.request.log_end)
        if name == "snapshots":
            return await redact_snapshots(adapters, erased, erasure_id)
        if name == "validations":
            return await redact_validations(adapters, erased)
        if name == "lineage":
            ends = (await log_end(settings, (LINEAGE,)))[LINEAGE]
            async with segment_store(settings) as cold:
                return await redact_lineage(adapters, cold, erased, ends)
        return await flag_versions(adapters, await registry(), erasure_id)

    async def advance() -> None:
        """Run the next stages of every erasure this worker owns whose views are done."""
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == ERASURES}
        for key, raw in list(table.items()):
            if key_partition(key, partitions) not in owned:
                continue  # before decoding: most keys are another worker's, or done
            status = erasure.decode_status(raw)
            if status is None:
                continue
            while status.views_done(partitions, partition_of):
                name = status.next_stage()
                if name is None:
                    break
                try:
                    detail = await stage(name, status)
                except NotYet as exc:
                    log.info("erasure %s: %s stage waits: %s", key.decode(), name, exc)
                    break
                except Exception:  # the S3 or the broker away: the next tick tries again
                    log.exception("erasure %s: %s stage failed; retried", key.decode(), name)
                    break
                # `events`: how many erased events this run covered (`ErasureStatus.covered`).
                detail = {**detail, "events": len(status.erased_ids())}
                record = ErasureStage(status.request.erasure_id, name, detail)  # type: ignore[union-attr]
                sent = await source.send(key=key, value=erasure.encode(record))
                await sent
                status = erasure.fold(status, record)

    if settings.erasure_seconds > 0:
        app.timer(settings.erasure_seconds)(advance)
    return app.agent(source, name="erasures")(fold)
