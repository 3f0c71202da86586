"""Start-up guards for local table state: never trust state the log no longer backs."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka.admin import AIOKafkaAdminClient

from app.adapters.restore import restore_log
from app.adapters.sync import run_sync
from app.settings import Settings
from tables.views import TABLE_NAME

log = logging.getLogger(__name__)

RUNNING = "worker.running"


def guard_local_state(app: faust.App, settings: Settings) -> None:
    """Restore a lost log from S3, and wipe local tables the log no longer backs.

    After a crash, RocksDB may hold writes whose changelog records never reached the broker,
    so it is not a prefix of the changelog; replaying the changelog over it would mix states.
    A broker that lost everything (the local one keeps topics in memory) loses the changelog
    too; the log itself comes back from the cold segments, and the views are folded again
    from it, from offset 0.
    """
    root = Path(settings.data_dir) / "worker"
    changelog = f"{app.conf.id}-{TABLE_NAME}-changelog"

    @app.on_worker_init.connect  # type: ignore[arg-type]
    def _on_init(sender: Any, *args: Any, **kwargs: Any) -> None:
        root.mkdir(parents=True, exist_ok=True)
        marker = root / RUNNING
        tables = Path(app.conf.tabledir)
        had_changelog = run_sync(_topic_exists(settings, changelog), timeout=30)
        report = run_sync(
            restore_log(settings, replication=app.conf.topic_replication_factor), timeout=900
        )
        reason = None
        if marker.exists():
            reason = "the last worker did not stop cleanly"
        elif not had_changelog:
            reason = "the broker has lost the log these tables were built from"
        if report.total:
            log.warning("the broker had lost its log: %d records restored from S3", report.total)
        if reason and tables.exists():
            log.warning(
                "discarding local table state in %s: %s; rebuilding from the changelog",
                tables,
                reason,
            )
            shutil.rmtree(tables)
        marker.write_text("")

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


async def _topic_exists(settings: Settings, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        return topic in await admin.list_topics()
    finally:
        await admin.close()
