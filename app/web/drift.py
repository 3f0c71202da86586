"""`/v1/models/{model}/drift`: live traffic's features, predictions and labels against the
training snapshot of the champion (or of `?against=VERSION`), per field, as PSI."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response, View

from app.models.drift import DriftError, model_drift
from app.models.stores import NotStored
from app.views.cluster import Incomplete
from app.web.context import web_of
from app.web.errors import error, incomplete


class ModelDrift(View):
    async def get(self, request: Request, model: str) -> Response:
        web = web_of(self)
        try:
            report = await model_drift(
                web.reads, web.adapters.snapshots, model, request.query, web.drift_cache
            )
        except DriftError as exc:
            return error(self, exc.status, str(exc), exc.details)
        except Incomplete as exc:
            return incomplete(self, exc)
        except NotStored as exc:
            return error(self, 404, "the version's training snapshot is not stored", str(exc))
        except (BotoCoreError, ClientError, OSError) as exc:
            return error(self, 503, "the object store cannot be read now", str(exc))
        return self.json(report)
