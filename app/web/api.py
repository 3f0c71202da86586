"""The v1 HTTP API: publish predictions and tags, read events, datasets, models and metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import faust
import orjson
from faust.types import TP
from faust.web import Request, Response, View

from app.domain.codec import InvalidEvent, prediction_from_dict, tag_from_dict
from app.domain.registry import training_marks
from app.settings import Settings
from app.topic_admin import raw_topic
from app.topics import PREDICTIONS, TAGS
from app.views.cluster import (
    ClusterReads,
    Incomplete,
    is_ready,
    serve_registry,
    serve_views,
)
from app.views.queries import Queries, ViewsRead, example_json
from app.web.errors import HttpError, error

MAX_WINDOW_HOURS = 24 * 31
# Daily windows add up the day's hourly ones: a year is 8,784 hourly reads per version.
MAX_WINDOW_DAYS = 366


class Window(NamedTuple):
    bucket: str  # "hour" | "day": how the hours are reported
    hours: list[str]


def register(
    app: faust.App,
    table: Any,
    queries: Queries,
    settings: Settings,
    ingest_counts: Mapping[str, int],
    flush_status: Callable[[], Mapping[str, Any]],
    reads: ClusterReads,
    training_status: Callable[[], Mapping[str, Any]],
    serving_status: Callable[[], Mapping[str, Any]],
) -> None:
    topics = {name: raw_topic(app, name) for name in (PREDICTIONS, TAGS)}

    async def publish(
        view: View, request: Request, topic: str, parse: Callable[[Any], Any]
    ) -> Response:
        try:
            body = await read_json(request, settings.max_body_bytes)
        except HttpError as exc:
            return error(view, exc.status, exc.message, exc.details)
        items = body if isinstance(body, list) else [body]
        if not items:
            return error(view, 400, "empty list: send one event or a non-empty list")
        problems, ids = [], []
        for i, item in enumerate(items):
            try:
                event = parse(item)
            except InvalidEvent as exc:
                problems.append({"index": i, "error": str(exc)})
                continue
            ids.append(event.tag_id if hasattr(event, "tag_id") else event.event_id)
            raw = orjson.dumps(item)
            if len(raw) > settings.max_event_bytes:
                problems.append(
                    {
                        "index": i,
                        "error": f"event of {len(raw)} bytes exceeds {settings.max_event_bytes}",
                    }
                )
        if problems:
            # All or nothing: a caller retries one batch, never a remainder.
            return error(
                view,
                400,
                f"{len(problems)} of {len(items)} events invalid; none accepted",
                problems,
            )
        futures = [
            await topics[topic].send(key=item["event_id"].encode(), value=orjson.dumps(item))
            for item in items
        ]
        for future in futures:
            await future  # 202 means the log has it
        return view.json({"accepted": ids, "count": len(ids)}, status=202)

    @app.page("/v1/predictions")
    class Predictions(View):
        async def post(self, request: Request) -> Response:
            return await publish(self, request, PREDICTIONS, prediction_from_dict)

    @app.page("/v1/tags")
    class Tags(View):
        async def post(self, request: Request) -> Response:
            return await publish(self, request, TAGS, tag_from_dict)

    @app.page("/v1/predictions/{event_id}")
    class PredictionDetail(View):
        @app.table_route(table=table, match_info="event_id")  # type: ignore[arg-type]
        async def get(self, request: Request, event_id: str) -> Response:
            example = queries.read().example(event_id)
            if example is None or example.prediction is None:
                details = {"event_id": event_id, "tag_waiting": example is not None}
                return error(self, 404, "no prediction with this event_id", details)
            return self.json(example_json(example))

    # Datasets, metrics and the registry are the whole cluster's answer (app/views/cluster.py).
    @app.page("/v1/datasets")
    class Datasets(View):
        async def get(self, request: Request) -> Response:
            try:
                found = await reads.run(lambda s: [s.dataset(name) for name in s.dataset_names()])
                marks = training_marks(await reads.registry())
            except Incomplete as exc:
                return incomplete(self, exc)
            return self.json({"datasets": [_marked(d, marks) for d in found if d is not None]})

    @app.page("/v1/datasets/{name}")
    class DatasetDetail(View):
        async def get(self, request: Request, name: str) -> Response:
            try:
                found = await reads.run(lambda s: s.dataset(name))
                if found is None:
                    return error(self, 404, "no such dataset", {"name": name})
                return self.json(_marked(found, training_marks(await reads.registry())))
            except Incomplete as exc:
                return incomplete(self, exc)

    @app.page("/v1/models/{model}/metrics")
    class ModelMetrics(View):
        async def get(self, request: Request, model: str) -> Response:
            try:
                versions = await reads.run(lambda s: s.model_versions(model))
                if not versions:
                    if any(e["model"] == model for e in await reads.registry()):
                        # Registered (trained) but nothing served yet: a model, no metrics.
                        return self.json({"model": model, "versions": {}})
                    return error(self, 404, "no predictions for this model", {"model": model})
                try:
                    wanted = window(request.query, max(last for _, last in versions.values()))
                except ValueError as exc:
                    return error(self, 400, "bad window", str(exc))
                metrics = await reads.run(
                    lambda s: s.model_metrics(model, wanted.hours, by_day=wanted.bucket == "day")
                )
            except Incomplete as exc:
                return incomplete(self, exc)
            return self.json({"model": model, "bucket": wanted.bucket, "versions": metrics})

    @app.page("/v1/models")
    class Models(View):
        async def get(self, request: Request) -> Response:
            try:
                entries = await reads.registry()
            except Incomplete as exc:
                return incomplete(self, exc)
            return self.json(
                {
                    "models": [
                        {
                            "model": e["model"],
                            "champion": e["champion"],
                            "versions": sorted(e["versions"], key=_version_order),
                        }
                        for e in sorted(entries, key=lambda e: e["model"])
                    ]
                }
            )

    @app.page("/v1/models/{model}")
    class ModelDetail(View):
        async def get(self, request: Request, model: str) -> Response:
            try:
                found = [e for e in await reads.registry() if e["model"] == model]
            except Incomplete as exc:
                return incomplete(self, exc)
            if not found:
                return error(self, 404, "no such model", {"model": model})
            entry = found[0]
            versions = [entry["versions"][v] for v in sorted(entry["versions"], key=_version_order)]
            return self.json(
                {
                    "model": model,
                    "champion": entry["champion"],
                    "champions": entry.get("champions", []),  # promotion order, for rollback
                    "versions": versions,
                }
            )

    @app.page("/internal/v1/views")
    class InternalViews(View):
        """What another worker asks of this one: committed keys of partitions held here."""

        async def post(self, request: Request) -> Response:
            try:
                body = await read_json(request, settings.max_body_bytes)
            except HttpError as exc:
                return error(self, exc.status, exc.message, exc.details)
            status, answer = serve_views(reads, body)
            return self.json(answer, status=status)

    @app.page("/internal/v1/registry")
    class InternalRegistry(View):
        async def get(self, request: Request) -> Response:
            return self.json(serve_registry(reads))

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            # Ready: in the group, its tables recovered (see is_ready); this process's view.
            active = sorted(
                tp.partition for tp in app.assignor.assigned_actives() if tp.topic == PREDICTIONS
            )
            ready = is_ready(app)
            body: dict[str, Any] = {
                "status": "ok" if ready else "starting",
                "ready": ready,
                "partitions": settings.partitions,
                "active_partitions": active,
            }
            views = queries.read()
            body["lag"] = lag(app, views, active)
            # Per topic and partition held here: the next log offset the views will fold.
            body["positions"] = {
                topic: {str(p): views.cursor(p).get(topic, -1) + 1 for p in active}
                for topic in (PREDICTIONS, TAGS)
            }
            body["ingest"] = dict(ingest_counts)
            body["flush"] = dict(flush_status())
            body["training"] = dict(training_status())
            body["serving"] = dict(serving_status())
            # 503 until ready, so a load balancer or a script waiting for readiness can trust
            # the status alone; the body says the same either way.
            return self.json(body, status=200 if ready else 503)

    @app.page("/livez")
    class Live(View):
        async def get(self, request: Request) -> Response:
            """The process answers: a liveness probe, which never waits on the cluster."""
            return self.json({"status": "alive"})


def incomplete(view: View, exc: Incomplete) -> Response:
    """503: some partitions had no ready owner; the caller retries, never reads a partial sum."""
    details = {"partitions": sorted(exc.partitions), "why": exc.why}
    return error(view, 503, "the cluster cannot answer in full right now", details)


def _marked(dataset: dict[str, Any], marks: Mapping[str, int]) -> dict[str, Any]:
    """Labeled examples that arrived since the last snapshot a model was trained on."""
    mark = marks.get(dataset["name"], 0)
    return {**dataset, "new_since_training": max(0, dataset["labeled"] - mark)}


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


async def read_json(request: Any, limit: int) -> Any:
    """The JSON body; reads at most `limit` bytes whatever the client says."""
    length = request.content_length
    if length is not None and length > limit:
        raise HttpError(413, f"body of {length} bytes exceeds {limit}")
    chunks, size = [], 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"body exceeds {limit} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "body is not valid JSON", str(exc)) from None


def lag(app: faust.App, views: ViewsRead, partitions: list[int]) -> int | None:
    """Records in the log not yet folded into the views here; None until every partition fetched."""
    total = 0
    for partition in partitions:
        cursor = views.cursor(partition)
        for topic in (PREDICTIONS, TAGS):
            # The fetch high-water mark, not ListOffsets: the local broker answers that wrongly.
            highwater = app.consumer.highwater(TP(topic, partition))
            if highwater is None:
                return None
            total += max(highwater - cursor.get(topic, -1) - 1, 0)
    return total


def window(query: Mapping[str, str], last_hour: str) -> Window:
    """Which windows to report: `?from=&to=` (hours like 2026-11-27T10, or days), else the 24
    hours up to the last seen; `?bucket=hour|day`, else hours while the span fits in
    MAX_WINDOW_HOURS and days beyond, so a long history still reads in one request."""
    end = _hour(query.get("to", last_hour))
    start = _hour(query["from"]) if "from" in query else end - timedelta(hours=23)
    if start > end:
        raise ValueError("'from' is after 'to'")
    count = int((end - start).total_seconds() // 3600) + 1
    bucket = query.get("bucket") or ("hour" if count <= MAX_WINDOW_HOURS else "day")
    if bucket == "hour":
        if count > MAX_WINDOW_HOURS:
            raise ValueError(f"at most {MAX_WINDOW_HOURS} hours per request; or bucket=day")
        return Window("hour", [_hour_name(start + timedelta(hours=i)) for i in range(count)])
    if bucket != "day":
        raise ValueError(f"bucket must be 'hour' or 'day', got {bucket[:16]!r}")
    days = (end.date() - start.date()).days + 1
    if days > MAX_WINDOW_DAYS:
        raise ValueError(f"at most {MAX_WINDOW_DAYS} days per request")
    first = datetime.combine(start.date(), datetime.min.time(), UTC)
    return Window("day", [_hour_name(first + timedelta(hours=i)) for i in range(days * 24)])


def _hour_name(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


def _hour(text: str) -> datetime:
    for shape in ("%Y-%m-%dT%H", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(f"hour must look like 2026-11-27T10 (or a day, 2026-11-27), got {text[:32]!r}")
