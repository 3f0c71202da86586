"""Start-up guards for local table state: never trust state the log no longer backs."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust

from app.adapters import epoch, segments
from app.adapters.flusher import Flusher
from app.adapters.queries import Queries
from app.adapters.restore import restore_log
from app.adapters.s3 import ensure_bucket
from app.adapters.sync import run_sync
from app.adapters.watchdog import EXIT_LOG_LOST, LogWatch
from app.settings import Settings
from app.topics import COLD
from tables.views import TABLE_NAME

log = logging.getLogger(__name__)

RUNNING = "worker.running"


def guard_local_state(app: faust.App, settings: Settings) -> None:
    """Restore a lost log from S3, and drop view state the log no longer backs.

    After a crash, RocksDB may hold writes whose changelog records never reached the broker,
    so it is not a prefix of the changelog; replaying the changelog over it would mix states.
    A broker that lost its log (the local one keeps topics in memory) gets the log back from
    the cold segments; what it holds about the views is then dropped too, and they are folded
    again from the log, from offset 0.
    """
    root = Path(settings.data_dir) / "worker"
    changelog = f"{app.conf.id}-{TABLE_NAME}-changelog"
    replication = app.conf.topic_replication_factor

    @app.on_worker_init.connect  # type: ignore[arg-type]
    def _on_init(sender: Any, *args: Any, **kwargs: Any) -> None:
        root.mkdir(parents=True, exist_ok=True)
        marker = root / RUNNING
        tables = Path(app.conf.tabledir)
        existing = run_sync(epoch.topics(settings), timeout=30)
        # A fresh object store (MinIO in docker/) has no bucket until a worker makes it.
        run_sync(ensure_bucket(settings), timeout=60)
        report = run_sync(restore_log(settings, replication=replication), timeout=900)
        if report.total:
            log.warning("the broker had lost its log: %d records restored from S3", report.total)
        reason = None
        if epoch.marker_topic(settings) not in existing:
            reason = "the broker has lost the log these views were built from"
            if changelog in existing or tables.exists():
                log.warning("%s: dropping the views' changelog", reason)
            run_sync(epoch.forget_views(settings, changelog), timeout=60)
        elif marker.exists():
            reason = "the last worker did not stop cleanly"
        if reason and tables.exists():
            log.warning("discarding local table state in %s: %s", tables, reason)
            shutil.rmtree(tables)
        run_sync(epoch.begin(settings, replication), timeout=30)
        marker.write_text("")
        segments.warm_up()

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


def watch_log(app: faust.App, settings: Settings, flusher: Flusher, queries: Queries) -> None:
    """Every few seconds, check that the broker still holds what this worker has seen."""
    watch = LogWatch(
        settings,
        marker=epoch.marker_topic(settings),
        owned=lambda: [
            (tp.topic, tp.partition) for tp in app.assignor.assigned_actives() if tp.topic in COLD
        ],
        applied=lambda p: queries.snapshot().cursor(p),
        flushed=flusher.flushed,
    )

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def check_log() -> None:
        if app.rebalancing or not app.tables.actives_ready:
            return
        try:
            reason = await watch.lost()
        except Exception as exc:  # the broker away is not the broker amnesiac: ask again later
            log.info("log check skipped: %s", exc)
            return
        if reason:
            log.critical(
                "the broker has lost the log (%s); stopping so that a restart restores it "
                "from S3 and rebuilds the views",
                reason,
            )
            logging.shutdown()
            os._exit(EXIT_LOG_LOST)

    on_stop(app, watch.stop)
