"""Start-up guards for local table state: never trust state the log no longer backs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient

from app.adapters.sync import run_sync
from app.adapters.topics import ensure_topics
from app.settings import Settings
from app.topics import PREDICTIONS

log = logging.getLogger(__name__)

RUNNING = "worker.running"


def guard_local_state(app: faust.App, settings: Settings) -> None:
    """Wipe local tables after a crash or a broker that lost its log; Faust then rebuilds them.

    After a crash, RocksDB may hold writes whose changelog records never reached the broker,
    so it is not a prefix of the changelog; replaying the changelog over it would mix states.
    A broker that lost everything (the local one keeps topics in memory) leaves local state
    that no log backs, which Faust would trip over (offsets above the high-water mark).
    """
    root = Path(settings.data_dir) / "worker"

    @app.on_worker_init.connect  # type: ignore[arg-type]
    def _on_init(sender: Any, *args: Any, **kwargs: Any) -> None:
        root.mkdir(parents=True, exist_ok=True)
        marker = root / RUNNING
        tables = Path(app.conf.tabledir)
        reason = None
        if marker.exists():
            reason = "the last worker did not stop cleanly"
        elif tables.exists() and not _broker_has_log(settings):
            reason = "the broker has lost the log these tables were built from"
        if reason and tables.exists():
            log.warning(
                "discarding local table state in %s: %s; rebuilding from the changelog",
                tables,
                reason,
            )
            shutil.rmtree(tables)
        marker.write_text("")
        run_sync(ensure_topics(settings, replication=app.conf.topic_replication_factor), timeout=60)

    async def forget_marker() -> None:
        (root / RUNNING).unlink(missing_ok=True)

    on_stop(app, forget_marker, last=True)


def on_stop(app: faust.App, callback: Callable[[], Awaitable[None]], last: bool = False) -> None:
    """Run `callback` when the app stops, before its tasks are cancelled (or after, if `last`)."""
    original = app.on_stop

    async def chained() -> None:
        if not last:
            await callback()
        await original()
        if last:
            await callback()

    app.on_stop = chained  # type: ignore[method-assign]


def _broker_has_log(settings: Settings) -> bool:
    async def check() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        try:
            return PREDICTIONS in await admin.list_topics()
        finally:
            await admin.close()

    return run_sync(check(), timeout=30)
