"""HTTP for serving and validation: predict with a model's champion, read validation reports."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response, View

from app.models.serving import ServingError
from app.models.validation import stored_report
from app.web.context import web_of
from app.web.errors import HttpError, error
from app.web.requests import read_json

MAX_BATCH = 10_000


class Predict(View):
    async def post(self, request: Request, model: str) -> Response:
        web = web_of(self)
        try:
            body = await read_json(request, web.settings.max_body_bytes)
        except HttpError as exc:
            return error(self, exc.status, exc.message, exc.details)
        single = not isinstance(body, list)
        items = [body] if single else body
        if not items or len(items) > MAX_BATCH:
            return error(self, 400, f"send one request or a list of 1 to {MAX_BATCH}")
        try:
            answer = await web.predictor.predict(model, items)
        except ServingError as exc:
            return error(self, exc.status, exc.message, exc.details)
        if single:
            first = answer["predictions"][0]
            return self.json({"model": model, "model_version": answer["model_version"], **first})
        return self.json(answer)


class Validation(View):
    async def get(self, request: Request, model: str, version: str) -> Response:
        web = web_of(self)
        events = request.query.get("events", "0")
        if not events.isdigit():
            return error(self, 400, "events: a number of per-event rows to include")
        try:
            found: Any = await stored_report(
                web.settings, model, version, int(events) > 0, int(events), web.adapters
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            return error(self, 503, "the object store cannot be read now", str(exc))
        if found is None:
            return error(self, 404, "no validation report", {"model": model, "version": version})
        return self.json(found)
