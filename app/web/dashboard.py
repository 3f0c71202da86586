"""`GET /dashboard`: one self-contained page (no CDN: nothing downloads at run time) that
draws the views with inline SVG from the same JSON API any client uses."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from faust.web import Request, Response, View


class Dashboard(View):
    async def get(self, request: Request) -> Response:
        return self.html(_page())


@cache
def _page() -> str:
    return files("app.web").joinpath("dashboard.html").read_text(encoding="utf-8")
