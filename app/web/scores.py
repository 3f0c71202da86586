"""HTTP for batch scoring: a job's status, and where its results are."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from faust.web import Request, Response, View

from app.models.scoring import job_status
from app.web.context import web_of
from app.web.errors import error


class ScoreJob(View):
    async def get(self, request: Request, model: str, job: str) -> Response:
        web = web_of(self)
        try:
            found = await job_status(web.settings, model, job, web.adapters)
        except (BotoCoreError, ClientError, OSError) as exc:
            return error(self, 503, "the object store cannot be read now", str(exc))
        if found is None:
            return error(self, 404, "no such scoring job", {"model": model, "job": job})
        bucket = web.settings.s3_bucket
        return self.json(
            {
                **found.to_dict(),
                "url": f"s3://{bucket}/{found.location}" if found.location else None,
            }
        )
