"""`POST /v1/erasures`, `GET /v1/erasures/{erasure_id}`: forget an entity or events, and see
how far it has gone (`app.domain.erasure`).

The request is logged before anything is erased, so the log keeps who asked, when, what and
why; a 202 answers once the broker has it. Its status is read from the erasures table's
owner (Faust forwards the request there).
"""

from __future__ import annotations

from datetime import UTC, datetime

from faust.web import Request, Response, View

from app.domain import erasure
from app.log.replay import log_end
from app.topic_admin import key_partition
from app.topics import ERASURES, PREDICTIONS
from app.web.context import web_of
from app.web.errors import HttpError, error
from app.web.requests import read_json


class Erasures(View):
    async def post(self, request: Request) -> Response:
        web = web_of(self)
        try:
            body = await read_json(request, web.settings.max_body_bytes)
        except HttpError as exc:
            return error(self, exc.status, exc.message, exc.details)
        try:
            # Where the log ends now: an entity's predictions before it are what is forgotten.
            ends = (await log_end(web.settings, (PREDICTIONS,)))[PREDICTIONS]
            req = erasure.request(body, "api", datetime.now(UTC), ends)
        except erasure.InvalidErasure as exc:
            return error(self, 400, str(exc))
        sent = await web.topics[ERASURES].send(
            key=req.erasure_id.encode(), value=erasure.encode(req)
        )
        await sent
        status = f"/v1/erasures/{req.erasure_id}"
        return self.json({"erasure_id": req.erasure_id, "status": status}, status=202)


class ErasureDetail(View):
    async def get(self, request: Request, erasure_id: str) -> Response:
        web = web_of(self)

        async def answer(view: View, request: Request, **ids: str) -> Response:
            erasure_id = ids["erasure_id"]
            status = erasure.decode_status(web.erasures.get(erasure_id.encode()))
            if status is None or status.request is None:
                return error(view, 404, "no erasure with this id", {"erasure_id": erasure_id})
            partitions = web.settings.partitions

            def partition_of(event_id: str) -> int:
                return key_partition(event_id.encode(), partitions)

            return view.json(erasure.status_json(status, partitions, partition_of))

        routed = web.app.table_route(table=web.erasures, match_info="erasure_id")(answer)
        try:
            response: Response = await routed(self, request, **{"erasure_id": erasure_id})
        except TypeError:
            return error(self, 503, "cannot find the owner of this key now; retry")
        return response
