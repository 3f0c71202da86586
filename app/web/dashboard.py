"""`GET /dashboard`: one self-contained page (no CDN: nothing downloads at run time) that
draws the views with inline SVG from the same JSON API any client uses."""

from __future__ import annotations

from importlib.resources import files

import faust
from faust.web import Request, Response, View


def register(app: faust.App) -> None:
    page = files("app.web").joinpath("dashboard.html").read_text(encoding="utf-8")

    @app.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.html(page)
