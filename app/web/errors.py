"""The one error shape of the API: `{"error": ..., "details": ...}` with a 4xx status."""

from __future__ import annotations

from typing import Any

from faust.web import Response, View


def error(view: View, status: int, message: str, details: Any = None) -> Response:
    return view.json({"error": message, "details": details}, status=status)
