"""The one place that wires settings, adapters, tables, agents and web views into a Faust app."""

from __future__ import annotations

import time
from functools import cache, partial
from typing import Any

import faust
from botocore.exceptions import BotoCoreError, ClientError

from agents import erasure as erasure_agent
from agents import ingest
from agents import lineage as lineage_agent
from agents import registry as registry_agent
from agents.registry import Reject
from app import native
from app.domain import drift
from app.domain.batch import DeadLetter, Kind, SourceRecord
from app.domain.registry import RegistryEntry, training_marks
from app.domain.registry import decode as decode_entry
from app.erasure_stages import erased_in_views
from app.extras import require
from app.heap import fix_mmap_threshold
from app.lifecycle import guard_local_state, stop_in_order, tune_collector, watch_log
from app.log.flusher import Flusher
from app.log.replay import hot_ends
from app.models.adapters import Adapters
from app.models.drift import DriftError, model_drift
from app.models.drift import gauges as drift_gauges
from app.models.retrain import Retrainer
from app.models.serving import Capture, Champions, Predictor, ServingError
from app.models.stores import NotStored
from app.models.training import load_version
from app.settings import Settings
from app.stack.profiles import PROFILES
from app.topic_admin import raw_topic
from app.topics import (
    COLD,
    DEAD_LETTERS,
    ERASURE_ORDERS,
    ERASURES,
    MODEL_EVENTS,
    PREDICTIONS,
    TAGS,
)
from app.views.changelog import BatchWriter, changelog_topic
from app.views.cluster import ClusterReads, Erased, Incomplete, Owners, ready_partitions
from app.views.compat import CommittingConsumer, check_versions
from app.views.deadletters import encode_dead_letter
from app.views.ingestor import Ingestor, SendDeadLetters, log_backfill
from app.views.queries import Queries
from app.web import auth, metrics, routes
from app.web.context import Web
from tables import erasures, lineage, registry, views
from tables.views import ChangelogWriter, TableStore


class Modelview:
    """What a running app holds, for tests and commands that need more than the Faust app."""

    def __init__(
        self,
        settings: Settings,
        app: faust.App,
        table: Any,
        ingestor: Ingestor,
        flusher: Flusher,
    ) -> None:
        self.settings = settings
        self.app = app
        self.table = table
        self.ingestor = ingestor
        self.flusher = flusher
        self.queries = Queries(TableStore(table), settings.partitions)
        self.predictor: Predictor | None = None


def create(
    settings: Settings,
    *,
    adapters: Adapters | None = None,
    dead_letters: SendDeadLetters | None = None,
    changelog: ChangelogWriter | None = None,
    **overrides: Any,
) -> Modelview:
    """The worker's Faust app and what it holds, built once.

    The adapters can be replaced (tests pass in-memory ones): `adapters` for the model
    services' stores, publisher and registry reader, `dead_letters` for the dead-letter
    topic, `changelog` for the views' changelog writer. `overrides` are Faust settings.
    """
    check_versions()  # the private internals app/views/compat.py relies on
    fix_mmap_threshold()  # before the first fetch: RSS stays level (app.heap)
    if settings.retrain_trainer != "baseline" and (
        settings.retrain_min_labels > 0 or settings.retrain_seconds > 0
    ):
        require("keras")  # at start, not at the first retraining an hour later
    config: dict[str, Any] = {
        "broker": settings.broker_url,
        "store": "rocksdb://",
        "datadir": str(settings.data_dir / "worker"),
        "web_bind": settings.web_bind or settings.web_host,
        "web_port": settings.web_port,
        "web_host": settings.web_host,
        "topic_partitions": settings.partitions,
        # The most records the ingest agent folds as one batch: one fetch (`agents.ingest`).
        "broker_max_poll_records": settings.batch_size,
        "autodiscover": False,
        "web_application_options": {"middlewares": [auth.middleware(settings)]},
        **PROFILES[settings.broker],
        **overrides,
    }
    app = faust.App(settings.app_id, **config)
    # One object store client for the worker's life, not one per request.
    kept = adapters or Adapters.real(settings)
    batches = BatchWriter(
        settings.bootstrap_servers,
        changelog_topic(settings),
        app.conf.producer_max_request_size,
        last_alone=settings.broker == "tansu",
        # Plain on Tansu: how it takes compressed batches has not been measured.
        compression="zstd" if settings.broker == "kafka" else None,
    )
    writer = changelog or batches
    table = views.define(app, settings, writer)
    # Dead letters go as record batches too, and not through Faust's producer, which
    # would hold them up behind the fold (`BatchWriter.publish`).
    send_dead_letters = dead_letters or partial(batches.publish, DEAD_LETTERS)

    async def to_erasures_topic(key: bytes, value: bytes) -> None:
        # Sent from inside the fold, as the dead letters are from beside it.
        await batches.publish(ERASURES, [(key, value)])

    ingestor = Ingestor(
        TableStore(table),
        send_dead_letters,
        settings.max_event_bytes,
        table.wait_changelog,
        backfill=log_backfill(settings),
        send_erasure=to_erasures_topic,
    )
    # The group commits what the views hold durably, and only that (the Ingestor's
    # docstring). Set before Faust makes its consumer, at start: the transport calls this.
    _, deliver, sought = ingest.register(app, ingestor, settings)
    app.transport.Consumer = partial(  # type: ignore[misc,assignment]
        CommittingConsumer,
        committable=ingestor.durable.committable,
        topics=(PREDICTIONS, TAGS, ERASURE_ORDERS),
        deliver=deliver,
        log_ends=hot_ends(settings),
        sought=sought,
    )
    flusher = Flusher(
        settings,
        owned=lambda: ((tp.topic, tp.partition) for tp in app.assignor.assigned_actives()),
        topics=COLD,
        redact=erased_in_views(TableStore(table)),
    )
    app.task(flusher.run)
    tune_collector(app)
    mv = Modelview(settings, app, table, ingestor, flusher)
    stop_watch = watch_log(app, settings, flusher, mv.queries)
    registry_table = registry.define(app, settings)
    lineage_table = lineage.define(app, settings)

    def rejecting(kind: Kind) -> Reject:
        async def reject(message: Any, reason: str) -> None:
            record = SourceRecord(
                kind, message.topic, message.partition, message.offset, message.key, message.value
            )
            letter = encode_dead_letter(DeadLetter(record, reason))
            await send_dead_letters([(message.key, letter)])

        return reject

    reads = _cluster_reads(app, settings, table, registry_table)
    predictor = _predictor(app, settings, registry_table, reads, kept)
    registry_agent.register(
        app, registry_table, settings, rejecting("model_event"), predictor.champion_changed
    )
    lineage_agent.register(app, lineage_table, settings, rejecting("lineage"))
    erasures_table = erasures.define(app, settings)
    erasure_agent.register(
        app,
        erasures_table,
        settings,
        rejecting("erasure"),
        kept,
        lambda: reads.registry_or(kept.registry.entries),
    )

    async def cluster_marks() -> dict[str, int]:
        return training_marks(await reads.registry())

    retrainer = Retrainer(
        settings, labeled=lambda: reads.run(lambda s: s.labeled()), marks=cluster_marks
    )

    @app.timer(2.0, on_leader=True)  # type: ignore[untyped-decorator]
    async def check_retraining() -> None:
        await retrainer.check()

    def abandon_trainings(sender: Any, *args: Any, **kwargs: Any) -> None:
        # A rebalance may move the leader: one training per dataset across the cluster.
        retrainer.abandon()

    app.on_partitions_revoked.connect(abandon_trainings)  # type: ignore[arg-type]

    async def settle_changelog(sender: Any, *args: Any, **kwargs: Any) -> None:
        await ingestor.before_rebalance()

    app.on_partitions_revoked.connect(settle_changelog)  # type: ignore[arg-type]
    # When (epoch seconds) this worker was last given its partitions: with the first and
    # last fold, how long a worker took over a backlog (`bench.ingest`).
    assigned: dict[str, float] = {}

    async def note_assignment(sender: Any, *args: Any, **kwargs: Any) -> None:
        # On the event loop's thread, as the folds are: its CPU between the two is theirs
        # and whatever else the loop ran meanwhile.
        assigned["at"], assigned["cpu"] = time.time(), time.thread_time()

    app.on_partitions_assigned.connect(note_assignment)  # type: ignore[arg-type]
    drift_cache: dict[str, drift.Counts] = {}
    psi_gauges = _measure_drift(app, settings, reads, kept, drift_cache)

    # Whether the fold runs compiled (`app.native`), and if not why: fixed once the fold's
    # modules are imported, as they are by now.
    compiled = {"compiled": native.in_use(), "reason": native.reason}

    def status() -> dict[str, Any]:
        return {
            "ingest": dict(ingestor.counts),
            "folds": {
                "assigned": assigned.get("at"),
                "first": ingestor.first_fold,
                "last": ingestor.last_fold,
                "assigned_cpu": assigned.get("cpu"),
                "last_cpu": ingestor.last_fold_cpu,
            },
            "flush": dict(flusher.status()),
            "native": compiled,
            "training": dict(retrainer.status()),
            "serving": dict(predictor.status()),
        }

    collector = metrics.StatusCollector(
        ingestor.counts,
        flusher.status,
        lambda: retrainer.completed,
        predictor.status,
        reads.held_here,
        lambda: psi_gauges,
    )
    web = Web(
        app=app,
        settings=settings,
        table=table,
        lineage=lineage_table,
        queries=mv.queries,
        reads=reads,
        predictor=predictor,
        adapters=kept,
        topics={name: raw_topic(app, name) for name in (PREDICTIONS, TAGS, ERASURES)},
        status=status,
        metrics=metrics.collected(collector),
        drift_cache=drift_cache,
        erasures=erasures_table,
    )
    routes.register(app, web)
    stop_in_order(
        app,
        before_faust=[
            # Every prediction answered is in Kafka first, so the flusher gets it too.
            ("refuse new predictions and capture the queued ones", predictor.capture.drain),
            ("abandon trainings under way", retrainer.stop),
            ("stop the log watch", stop_watch),
            # Faust's stop waits for the ingest agent, which must not retry for ever.
            ("let a failing ingest batch go", ingestor.stop_retrying),
            # Before its task is cancelled: a clean stop leaves nothing only in Kafka.
            ("flush cold segments", flusher.stop),
            ("close the cluster reads' connections", reads.close),
            # Reopened on use if a late request needs them; nothing of the views' state.
            ("close the object store's client and the model-events producer", kept.close),
        ],
        after_faust=[
            # The streams are drained: the views' last changes reach the changelog before
            # the stop may be called clean (else local state would be ahead of it).
            ("write the views' last changes to the changelog", ingestor.drain),
            ("stop the changelog writer", writer.stop),
            # The dead letters' producer: the changelog writer's, unless a test gave its own.
            ("stop the dead-letter producer", batches.stop),
        ],
        mark_clean_stop=guard_local_state(app, settings),
    )
    mv.predictor = predictor
    return mv


def _measure_drift(
    app: faust.App,
    settings: Settings,
    reads: ClusterReads,
    adapters: Adapters,
    cache: dict[str, drift.Counts],
) -> dict[tuple[str, str], float]:
    """(model, field) -> PSI of each champion, measured by the leader alone: the gauges
    answer for the cluster, once (a worker that stops leading forgets them)."""
    gauges: dict[tuple[str, str], float] = {}
    if settings.drift_seconds <= 0:
        return gauges

    @app.timer(settings.drift_seconds, on_leader=True)  # type: ignore[untyped-decorator]
    async def measure_drift() -> None:
        found: dict[tuple[str, str], float] = {}
        try:
            entries = await reads.registry()
        except Incomplete:
            return  # mid-rebalance: the next round
        for entry in entries:
            if entry.champion is None:
                continue
            try:
                report = await model_drift(reads, adapters.snapshots, entry.model, {}, cache)
            except (DriftError, Incomplete, NotStored, BotoCoreError, ClientError, OSError):
                continue  # nothing to compare yet, or not now: its gauges are left out
            found |= {(entry.model, name): psi for name, psi in drift_gauges(report).items()}
        gauges.clear()
        gauges.update(found)

    def forget(sender: Any, *args: Any, **kwargs: Any) -> None:
        if not app.is_leader():
            gauges.clear()

    app.on_partitions_assigned.connect(forget)  # type: ignore[arg-type]
    return gauges


def _cluster_reads(
    app: faust.App, settings: Settings, table: Any, registry_table: Any
) -> ClusterReads:
    def distribution() -> dict[str, set[int]]:
        spread = app.assignor.table_metadata(changelog_topic(settings))
        return {
            url: {p for parts in topics.values() for p in parts} for url, topics in spread.items()
        }

    def local_registry() -> tuple[list[bytes], set[int]]:
        held = ready_partitions(app, MODEL_EVENTS)
        # A table's values() are its active partitions' (never a standby copy).
        return ([v for v in registry_table.values() if v is not None] if held else []), held

    owners = Owners(lambda: ready_partitions(app), distribution, str(app.conf.canonical_url))
    return ClusterReads(
        TableStore(table), settings.partitions, owners, local_registry, token=settings.api_token
    )


def _predictor(
    app: faust.App, settings: Settings, registry_table: Any, reads: ClusterReads, adapters: Adapters
) -> Predictor:
    predictions = raw_topic(app, PREDICTIONS)

    async def send(key: bytes, value: bytes) -> Any:
        return await predictions.send(key=key, value=value)

    def local(model: str) -> RegistryEntry | None:
        raw = registry_table.get(model.encode())
        return decode_entry(raw) if raw is not None else None

    async def from_cluster() -> dict[str, RegistryEntry]:
        return await reads.registry_or(adapters.registry.entries)

    async def load(model: str, version: str) -> Any:
        return await load_version(settings, model, version, adapters)

    async def logged(event_id: str) -> dict[str, Any] | None:
        try:
            return await reads.prediction(event_id)
        except Incomplete as exc:
            raise ServingError(
                503, "cannot tell now whether this event_id was predicted before; retry", str(exc)
            ) from None
        except Erased:
            raise ServingError(
                410, "this event_id was erased: send the request with a new one", event_id
            ) from None

    capture = Capture(send, settings.capture_buffer)
    app.task(capture.run)
    return Predictor(
        Champions(local, from_cluster),
        load,
        capture,
        settings.max_event_bytes,
        durable=settings.capture == "durable",
        ack_within=settings.capture_ack_seconds,
        lookup=logged,
    )


@cache
def default_app() -> faust.App:
    return create(Settings.from_env()).app
