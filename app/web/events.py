"""`/v1/predictions`, `/v1/tags`: publish events (all or none); read one prediction back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from faust.web import Request, Response, View

from app.domain.codec import InvalidEvent, prediction_from_dict, tag_from_dict
from app.topics import PREDICTIONS, TAGS
from app.views.queries import example_json
from app.web.context import web_of
from app.web.errors import HttpError, error
from app.web.requests import read_json


class Predictions(View):
    async def post(self, request: Request) -> Response:
        return await publish(self, request, PREDICTIONS, client_prediction)


class Tags(View):
    async def post(self, request: Request) -> Response:
        return await publish(self, request, TAGS, tag_from_dict)


class PredictionDetail(View):
    async def get(self, request: Request, event_id: str) -> Response:
        web = web_of(self)
        # Asked of the worker that holds the event's partition (Faust forwards it there).
        routed = web.app.table_route(table=web.table, match_info="event_id")(_prediction)
        try:
            response: Response = await routed(self, request, event_id=event_id)  # type: ignore[call-arg]
        except TypeError:
            # Faust finds the owner through its producer's metadata, which can lack the
            # changelog topic after a broker outage (seen in test_capture): answer from here
            # when the event is here, else say to retry, never a bare 500.
            if web.queries.read().example(event_id) is not None:
                return await _prediction(self, request, event_id)
            return error(self, 503, "cannot find the event's owner now; retry", event_id)
        return response


async def _prediction(view: View, request: Request, event_id: str) -> Response:
    example = web_of(view).queries.read().example(event_id)
    if example is not None and example.erased:
        return error(view, 410, "this event was erased", {"event_id": event_id})
    if example is None or example.prediction is None:
        details = {"event_id": event_id, "tag_waiting": example is not None}
        return error(view, 404, "no prediction with this event_id", details)
    return view.json(example_json(example))


def client_prediction(item: Any) -> Any:
    """A prediction from a client: `erased` marks what an erasure redacted, and only it may."""
    if isinstance(item, dict) and "erased" in item:
        raise InvalidEvent("erased: set only by modelview's erasures (POST /v1/erasures)")
    return prediction_from_dict(item)


async def publish(
    view: View, request: Request, topic: str, parse: Callable[[Any], Any]
) -> Response:
    web = web_of(view)
    limit = web.settings.max_event_bytes
    try:
        body = await read_json(request, web.settings.max_body_bytes)
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
        size = len(orjson.dumps(item))
        if size > limit:
            problems.append({"index": i, "error": f"event of {size} bytes exceeds {limit}"})
    if problems:
        # All or nothing: a caller retries one batch, never a remainder.
        message = f"{len(problems)} of {len(items)} events invalid; none accepted"
        return error(view, 400, message, problems)
    futures = [
        await web.topics[topic].send(key=item["event_id"].encode(), value=orjson.dumps(item))
        for item in items
    ]
    for future in futures:
        await future  # 202 means the log has it
    return view.json({"accepted": ids, "count": len(ids)}, status=202)
