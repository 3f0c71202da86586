"""`/v1/models`: the registry (versions, lineage, champions) and each model's metrics."""

from __future__ import annotations

from faust.web import Request, Response, View

from app.domain.registry import version_to_dict
from app.domain.windows import window
from app.views.cluster import Incomplete
from app.web.context import web_of
from app.web.errors import error, incomplete


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
