"""`/internal/v1/*`: what another worker asks of this one for the cluster's answer
(`app/views/cluster.py`): committed keys of the partitions held here, and its registry."""

from __future__ import annotations

from faust.web import Request, Response, View

from app.views.cluster import serve_registry, serve_views
from app.web.context import web_of
from app.web.errors import HttpError, error
from app.web.requests import read_json


class InternalViews(View):
    async def post(self, request: Request) -> Response:
        web = web_of(self)
        try:
            body = await read_json(request, web.settings.max_body_bytes)
        except HttpError as exc:
            return error(self, exc.status, exc.message, exc.details)
        status, answer = serve_views(web.reads, body)
        return self.json(answer, status=status)


class InternalRegistry(View):
    async def get(self, request: Request) -> Response:
        return self.json(serve_registry(web_of(self).reads))
