"""Start-up guards for local table state: never trust state the log no longer backs."""

from __future__ import annotations

import gc
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust

from app.log import epoch, segments
from app.log.flusher import Flusher
from app.log.restore import restore_log
from app.log.watchdog import EXIT_LOG_LOST, LogWatch
from app.s3 import ensure_bucket
from app.settings import Settings
from app.sync import run_sync
from app.topic_admin import ensure_changelogs
from app.topics import COLD
from app.views.queries import Queries
from tables.views import TABLE_NAME

log = logging.getLogger(__name__)

RUNNING = "worker.running"


def tune_collector(app: faust.App) -> None:
    """Once the worker has started, keep the cycle collector off what start-up built.

    With CPython's defaults a full collection came about every second of ingestion, each
    scanning the 200,000 objects of Faust, aiokafka and the rest: 0.12 s of collection a
    second (measured with `gc.callbacks`, bench.ingest, 2026-12-05). Start-up's objects
    are frozen, never scanned again. The thresholds stay CPython's: collecting the young
    generation every 50,000 allocations instead made the worker's RSS grow by 170 MB over
    bench.memory's second half million events (BENCHMARKS.md, 2026-12-05 evening).

    What the imports built is collected and frozen as the worker process starts, before
    it joins its group: done only once started, the collection took 0.10 s over 183,000
    objects, held the GIL, and the first fetch of the partitions just assigned waited for
    it (bench.ingest, 2026-12-07). Once started, only what start-up added since is left.
    """

    @app.on_worker_init.connect  # type: ignore[arg-type]
    def _freeze_imports(sender: Any, *args: Any, **kwargs: Any) -> None:
        gc.collect()
        gc.freeze()

    @app.task  # type: ignore[untyped-decorator]
    async def _tune_collector() -> None:
        gc.collect()
        gc.freeze()


Step = tuple[str, Callable[[], Awaitable[None]]]


def guard_local_state(app: faust.App, settings: Settings) -> Callable[[], Awaitable[None]]:
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

    initialized = False
    # on_worker_init runs before the worker configures logging, where INFO records are
    # dropped: what start-up found is said once the worker has started.
    found: list[str] = []

    @app.task  # type: ignore[untyped-decorator]
    async def _report_start() -> None:
        for line in found:
            log.info("%s", line)

    @app.on_worker_init.connect  # type: ignore[arg-type]
    def _on_init(sender: Any, *args: Any, **kwargs: Any) -> None:
        # Faust sends this signal twice per start (App.main, then its CLI): a second run
        # found the marker the first had just written, and took every start, clean or not,
        # for a crash, discarding the local tables.
        nonlocal initialized
        if initialized:
            return
        initialized = True
        root.mkdir(parents=True, exist_ok=True)
        marker = root / RUNNING
        tables = Path(app.conf.tabledir)
        existing = run_sync(epoch.topics(settings), timeout=30)
        # A fresh object store (MinIO in docker/) has no bucket until a worker makes it.
        run_sync(ensure_bucket(settings), timeout=60)
        reason = None
        if epoch.marker_topic(settings) not in existing:
            reason = (
                f"the views were written in an earlier layout (now {epoch.VIEWS_LAYOUT})"
                if set(epoch.older_markers(settings)) & existing
                else "the broker has lost the log these views were built from"
            )
            had_views = changelog in existing or tables.exists()

            async def start_epoch() -> None:
                await restore(settings, replication)
                if had_views:
                    log.warning("%s: dropping the views' changelog", reason)
                await epoch.forget_views(settings, changelog)

            opened = run_sync(epoch.open_new(settings, replication, start_epoch), timeout=960)
            found.append(
                "log epoch opened by "
                + ("this worker" if opened else "another worker (this one waited for it)")
            )
        else:
            run_sync(restore(settings, replication), timeout=900)
            if marker.exists():
                reason = "the last worker did not stop cleanly"
        if reason and tables.exists():
            log.warning("discarding local table state in %s: %s", tables, reason)
            shutil.rmtree(tables)
        changelogs = {
            table.changelog_topic.get_topic_name(): table.partitions or app.conf.topic_partitions
            for table in app.tables.values()
        }
        run_sync(ensure_changelogs(settings, changelogs, replication), timeout=60)
        marker.write_text("")
        segments.warm_up()

    async def mark_clean_stop() -> None:
        """The next start may trust the local tables: call only once they are all in Kafka."""
        (root / RUNNING).unlink(missing_ok=True)

    return mark_clean_stop


async def restore(settings: Settings, replication: int) -> None:
    report = await restore_log(settings, replication=replication)
    if report.total:
        log.warning("the broker had lost its log: %d records restored from S3", report.total)


def stop_in_order(
    app: faust.App,
    before_faust: list[Step],
    after_faust: list[Step],
    mark_clean_stop: Callable[[], Awaitable[None]],
) -> None:
    """The worker's stop, step by step in the order given: `before_faust`, then Faust's own
    stop (the consumer paused, the streams drained, the tables stopped), then `after_faust`,
    and last the clean-stop mark, only if every step succeeded. A step that fails is logged
    and the rest still run; the stop is then not marked clean, so the next start discards
    local table state instead of trusting it.
    """
    faust_stop = app.on_stop
    failed: list[str] = []

    async def run(steps: list[Step]) -> None:
        for name, step in steps:
            log.info("stopping: %s", name)
            try:
                await step()
            except Exception:
                failed.append(name)
                log.exception("stop step failed: %s", name)

    async def ordered() -> None:
        await run(before_faust)
        await run([("Faust: consumer, streams, tables", faust_stop)])
        await run(after_faust)
        if failed:
            log.error("not a clean stop (%s): the next start rebuilds local state", failed)
        else:
            await mark_clean_stop()

    app.on_stop = ordered  # type: ignore[method-assign]


def watch_log(
    app: faust.App, settings: Settings, flusher: Flusher, queries: Queries
) -> Callable[[], Awaitable[None]]:
    """Every few seconds, check that the broker still holds what this worker has seen;
    returns the watch's stop."""
    watch = LogWatch(
        settings,
        marker=epoch.marker_topic(settings),
        owned=lambda: [
            (tp.topic, tp.partition) for tp in app.assignor.assigned_actives() if tp.topic in COLD
        ],
        applied=lambda p: queries.read().cursor(p),
        flushed=flusher.flushed,
    )

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def check_log() -> None:
        settled = not app.rebalancing and app.tables.actives_ready
        try:
            reason = await watch.lost(views_settled=settled)
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

    return watch.stop
