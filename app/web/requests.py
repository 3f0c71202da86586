"""Reading a request's body: bounded, and JSON or a 4xx that says why."""

from __future__ import annotations

from typing import Any

import orjson

from app.web.errors import HttpError


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
