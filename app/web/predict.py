"""HTTP for serving and validation: predict with a model's champion, read validation reports."""

from __future__ import annotations

from typing import Any

import faust
from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response, View

from app.models.adapters import Adapters
from app.models.serving import Predictor, ServingError
from app.models.validation import stored_report
from app.settings import Settings
from app.web.api import read_json
from app.web.errors import HttpError, error

MAX_BATCH = 10_000


def register(app: faust.App, predictor: Predictor, settings: Settings, adapters: Adapters) -> None:
    @app.page("/v1/models/{model}/predict")
    class Predict(View):
        async def post(self, request: Request, model: str) -> Response:
            try:
                body = await read_json(request, settings.max_body_bytes)
            except HttpError as exc:
                return error(self, exc.status, exc.message, exc.details)
            single = not isinstance(body, list)
            items = [body] if single else body
            if not items or len(items) > MAX_BATCH:
                return error(self, 400, f"send one request or a list of 1 to {MAX_BATCH}")
            try:
                answer = await predictor.predict(model, items)
            except ServingError as exc:
                return error(self, exc.status, exc.message, exc.details)
            if single:
                first = answer["predictions"][0]
                return self.json(
                    {"model": model, "model_version": answer["model_version"], **first}
                )
            return self.json(answer)

    @app.page("/v1/models/{model}/versions/{version}/validation")
    class Validation(View):
        async def get(self, request: Request, model: str, version: str) -> Response:
            events = request.query.get("events", "0")
            if not events.isdigit():
                return error(self, 400, "events: a number of per-event rows to include")
            try:
                found: Any = await stored_report(
                    settings, model, version, int(events) > 0, int(events), adapters
                )
            except (BotoCoreError, ClientError, OSError) as exc:
                return error(self, 503, "the object store cannot be read now", str(exc))
            if found is None:
                return error(
                    self, 404, "no validation report", {"model": model, "version": version}
                )
            return self.json(found)
