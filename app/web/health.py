"""`/healthz` (ready: 503 until this worker can answer) and `/livez` (the process answers)."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View

from app.topics import LOGGED, PREDICTIONS
from app.views.cluster import is_ready
from app.views.queries import ViewsRead
from app.web.context import web_of


class Health(View):
    async def get(self, request: Request) -> Response:
        web = web_of(self)
        app = web.app
        # Ready: in the group, its tables recovered (see is_ready); this process's view.
        active = sorted(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == PREDICTIONS
        )
        ready = is_ready(app)
        body: dict[str, Any] = {
            "status": "ok" if ready else "starting",
            "ready": ready,
            "partitions": web.settings.partitions,
            "active_partitions": active,
        }
        views = web.queries.read()
        body["lag"] = lag(app, views, active)
        # Per topic and partition held here: the next log offset the views will fold.
        body["positions"] = {
            topic: {str(p): views.cursor(p).get(topic, -1) + 1 for p in active} for topic in LOGGED
        }
        body.update(web.status())
        # 503 until ready, so a load balancer or a script waiting for readiness can trust
        # the status alone; the body says the same either way.
        return self.json(body, status=200 if ready else 503)


class Live(View):
    async def get(self, request: Request) -> Response:
        """The process answers: a liveness probe, which never waits on the cluster."""
        return self.json({"status": "alive"})


def lag(app: faust.App, views: ViewsRead, partitions: list[int]) -> int | None:
    """Records in the log not yet folded into the views here; None until every partition fetched."""
    total = 0
    for partition in partitions:
        cursor = views.cursor(partition)
        for topic in LOGGED:
            # The fetch high-water mark, not ListOffsets: the local broker answers that wrongly.
            highwater = app.consumer.highwater(TP(topic, partition))
            if highwater is None:
                return None
            total += max(highwater - cursor.get(topic, -1) - 1, 0)
    return total
