"""Which hours a windowed read covers: `?from=&to=` and `?bucket=`, as the metrics and drift
reads take them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

MAX_WINDOW_HOURS = 24 * 31
# Daily windows add up the day's hourly ones: a year is 8,784 hourly reads per version.
MAX_WINDOW_DAYS = 366


class Window(NamedTuple):
    bucket: str  # "hour" | "day": how the hours are reported
    hours: list[str]


def window(query: Mapping[str, str], last_hour: str) -> Window:
    """Which windows to report: `?from=&to=` (hours like 2026-11-27T10, or days), else the 24
    hours up to the last seen; `?bucket=hour|day`, else hours while the span fits in
    MAX_WINDOW_HOURS and days beyond, so a long history still reads in one request."""
    end = _hour(query.get("to", last_hour))
    start = _hour(query["from"]) if "from" in query else end - timedelta(hours=23)
    if start > end:
        raise ValueError("'from' is after 'to'")
    count = int((end - start).total_seconds() // 3600) + 1
    bucket = query.get("bucket") or ("hour" if count <= MAX_WINDOW_HOURS else "day")
    if bucket == "hour":
        if count > MAX_WINDOW_HOURS:
            raise ValueError(f"at most {MAX_WINDOW_HOURS} hours per request; or bucket=day")
        return Window("hour", [_hour_name(start + timedelta(hours=i)) for i in range(count)])
    if bucket != "day":
        raise ValueError(f"bucket must be 'hour' or 'day', got {bucket[:16]!r}")
    days = (end.date() - start.date()).days + 1
    if days > MAX_WINDOW_DAYS:
        raise ValueError(f"at most {MAX_WINDOW_DAYS} days per request")
    first = datetime.combine(start.date(), datetime.min.time(), UTC)
    return Window("day", [_hour_name(first + timedelta(hours=i)) for i in range(days * 24)])


def _hour_name(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H")


def _hour(text: str) -> datetime:
    for shape in ("%Y-%m-%dT%H", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(f"hour must look like 2026-11-27T10 (or a day, 2026-11-27), got {text[:32]!r}")
