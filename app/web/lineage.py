"""`/v1/predictions/{event_id}/lineage`, `/v1/tags/{tag_id}/lineage`: what used an event.

The lineage table is keyed by event id and by tag id, so each read is asked of the worker
that holds the key's partition (Faust forwards it there), and answered from one table value
joined with the registry (which versions were fitted on which snapshot).
"""

from __future__ import annotations

from faust.web import Request, Response, View

from app.domain import lineage
from app.web.context import web_of
from app.web.errors import error


class EventLineage(View):
    async def get(self, request: Request, event_id: str) -> Response:
        return await _routed(self, request, "event_id", event_id)


class TagLineage(View):
    async def get(self, request: Request, tag_id: str) -> Response:
        return await _routed(self, request, "tag_id", tag_id)


async def _routed(view: View, request: Request, by: str, key: str) -> Response:
    web = web_of(view)

    async def answer(view: View, request: Request, **ids: str) -> Response:
        return await _answer(view, by, ids[by])

    routed = web.app.table_route(table=web.lineage, match_info=by)(answer)
    try:
        response: Response = await routed(view, request, **{by: key})
    except TypeError:
        # As for GET /v1/predictions/{id}: the owner cannot be found while Faust's producer
        # metadata lacks the changelog (after a broker outage). Say to retry.
        return error(view, 503, "cannot find the owner of this key now; retry", {by: key})
    return response


async def _answer(view: View, by: str, key: str) -> Response:
    web = web_of(view)
    records = lineage.entries(web.lineage.get(key.encode()))
    entries = await web.reads.registry_or(web.adapters.registry.entries)
    found = lineage.answer(records, entries.values(), **{by: key})
    return view.json({by: key, **found})
