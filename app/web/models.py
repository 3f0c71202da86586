"""`/v1/models`: the registry (versions, lineage, champions) and each model's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from faust.web import Request, Response, View

from app.domain.registry import version_to_dict
from app.views.cluster import Incomplete
from app.web.context import web_of
from app.web.errors import error, incomplete

MAX_WINDOW_HOURS = 24 * 31
# Daily windows add up the day's hourly ones: a year is 8,784 hourly reads per version.
MAX_WINDOW_DAYS = 366


class Window(NamedTuple):
    bucket: str  # "hour" | "day": how the hours are reported
    hours: list[str]


class Models(View):
    async def get(self, request: Request) -> Response:
        try:
            entries = await web_of(self).reads.registry()
        except Incomplete as exc:
            return incomplete(self, exc)
        models = [
            {
                "model": e.model,
                "champion": e.champion,
                "versions": sorted(e.versions, key=_version_order),
            }
            for e in sorted(entries, key=lambda e: e.model)
        ]
        return self.json({"models": models})


class ModelDetail(View):
    async def get(self, request: Request, model: str) -> Response:
        try:
            found = [e for e in await web_of(self).reads.registry() if e.model == model]
        except Incomplete as exc:
            return incomplete(self, exc)
        if not found:
            return error(self, 404, "no such model", {"model": model})
        entry = found[0]
        ordered = sorted(entry.versions, key=_version_order)
        return self.json(
            {
                "model": model,
                "champion": entry.champion,
                "champions": list(entry.champions),  # promotion order, for rollback
                "versions": [version_to_dict(entry.versions[v]) for v in ordered],
            }
        )


class ModelMetrics(View):
    async def get(self, request: Request, model: str) -> Response:
        reads = web_of(self).reads
        try:
            versions = await reads.run(lambda s: s.model_versions(model))
            if not versions:
                if any(e.model == model for e in await reads.registry()):
                    # Registered (trained) but nothing served yet: a model, no metrics.
                    return self.json({"model": model, "versions": {}})
                return error(self, 404, "no predictions for this model", {"model": model})
            try:
                wanted = window(request.query, max(last for _, last in versions.values()))
            except ValueError as exc:
                return error(self, 400, "bad window", str(exc))
            metrics = await reads.run(
                lambda s: s.model_metrics(model, wanted.hours, by_day=wanted.bucket == "day")
            )
        except Incomplete as exc:
            return incomplete(self, exc)
        return self.json({"model": model, "bucket": wanted.bucket, "versions": metrics})


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


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
