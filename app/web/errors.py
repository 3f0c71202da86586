"""The one error shape of the API: `{"error": ..., "details": ...}` with a 4xx status."""

from __future__ import annotations

from typing import Any

from faust.web import Response, View

from app.views.cluster import Incomplete


class HttpError(Exception):
    """Raised by request helpers; the view turns it into the error shape."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def error(view: View, status: int, message: str, details: Any = None) -> Response:
    return view.json({"error": message, "details": details}, status=status)


def incomplete(view: View, exc: Incomplete) -> Response:
    """503: some partitions had no ready owner; the caller retries, never reads a partial sum."""
    details = {"partitions": sorted(exc.partitions), "why": exc.why}
    return error(view, 503, "the cluster cannot answer in full right now", details)
