"""Bearer-token auth for the HTTP API, as aiohttp middleware in front of every view.

With `MODELVIEW_API_TOKEN` set, every write needs `Authorization: Bearer <token>`, and reads
do too with `MODELVIEW_AUTH_READS`. `/healthz` and `/livez` stay open for probes, and `/dashboard`,
a page without data whose own API calls carry the token. Tokens are compared in
constant time and never echoed or logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from app.settings import Settings

# The dashboard page holds no data; it asks for the token before its API calls.
OPEN = frozenset({"/healthz", "/livez", "/dashboard"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message, "details": {"scheme": "Bearer"}}),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="modelview"'},
    )


def middleware(settings: Settings) -> Any:
    expected = (settings.api_token or "").encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not expected or request.path in OPEN:
            return await handler(request)
        if request.method in READS and not settings.auth_reads:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _refuse(401, "a bearer token is required: Authorization: Bearer <token>")
        if not hmac.compare_digest(given.strip().encode(), expected):
            return _refuse(403, "the bearer token is not valid")
        return await handler(request)

    return check
