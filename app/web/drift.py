"""`/v1/models/{model}/drift`: live traffic's features, predictions and labels against the
training snapshot of the champion (or of `?against=VERSION`), per field, as PSI."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response, View

from app.domain import drift
from app.domain.stats import total
from app.models.stores import NotStored
from app.views.cluster import Incomplete
from app.web.context import web_of
from app.web.errors import error, incomplete
from app.web.models import window


class ModelDrift(View):
    async def get(self, request: Request, model: str) -> Response:
        web = web_of(self)
        reads = web.reads
        query = request.query
        try:
            entry = next((e for e in await reads.registry() if e.model == model), None)
            if entry is None:
                return error(self, 404, "no such model in the registry", {"model": model})
            against = query.get("against") or entry.champion
            if against is None or against not in entry.versions:
                details = {"model": model, "against": against, "versions": sorted(entry.versions)}
                return error(
                    self, 409, "no version to compare with: no champion, pass ?against=", details
                )
            snapshot = entry.versions[against].snapshot
            versions = await reads.run(lambda s: s.model_versions(model))
            if not versions:
                return error(self, 404, "no predictions for this model", {"model": model})
            try:
                wanted = window(query, max(last for _, last in versions.values()))
            except ValueError as exc:
                return error(self, 400, "bad window", str(exc))
            version = query.get("version")
            inputs, labels = await reads.run(lambda s: s.model_inputs(model, wanted.hours, version))
        except Incomplete as exc:
            return incomplete(self, exc)
        try:
            reference = await web.adapters.snapshots.stats(
                snapshot["dataset"], snapshot["snapshot_id"]
            )
        except NotStored as exc:
            return error(self, 404, "the version's training snapshot is not stored", str(exc))
        except (BotoCoreError, ClientError, OSError) as exc:
            return error(self, 503, "the object store cannot be read now", str(exc))
        compared = drift.compare(reference, total([inputs, labels]))
        return self.json(
            {
                "model": model,
                "reference": {
                    "version": against,
                    "dataset": snapshot["dataset"],
                    "snapshot_id": snapshot["snapshot_id"],
                    "events": drift.events(reference),
                },
                "window": {"from": wanted.hours[0], "to": wanted.hours[-1]},
                "version": version,
                "live_events": drift.events(inputs),
                "threshold": drift.DRIFTED,
                "drifted": sorted(n for n, f in compared.items() if f["drifted"]),
                "features": {
                    n: f for n, f in compared.items() if n not in (drift.PREDICTION, drift.LABEL)
                },
                "prediction": compared.get(drift.PREDICTION),
                "label": compared.get(drift.LABEL),
            }
        )
