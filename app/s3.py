"""The object store adapter (S3 API through aiobotocore); the bucket and client set-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from app.settings import Settings
from app.sync import run_sync

TRANSIENT = ("InternalError", "ServiceUnavailable", "SlowDown", "500", "503")


@cache
def _session() -> Any:
    # One session per process: each new one parses botocore's service models again, which
    # cost 0.15 s a client, more than most of the requests made with it.
    return get_session()


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[Any]:
    session = _session()
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"},
        connect_timeout=2,
        read_timeout=30,
    )
    async with session.create_client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name="us-east-1",
        config=config,
    ) as client:
        yield client


async def ensure_bucket(settings: Settings) -> None:
    async with s3_client(settings) as client:
        try:
            await client.head_bucket(Bucket=settings.s3_bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            try:
                await client.create_bucket(Bucket=settings.s3_bucket)
            except ClientError as again:  # another worker created it meanwhile
                if again.response.get("Error", {}).get("Code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
        except EndpointConnectionError as exc:
            raise ConnectionError(str(exc)) from exc


async def ensure_ready(settings: Settings) -> None:
    """The bucket exists and objects can be written and read back.

    Right after a start SeaweedFS answers bucket requests before its volume server serves
    object reads (InternalError): a restore must not begin before then.
    """
    await ensure_bucket(settings)
    async with s3_client(settings) as client:
        try:
            key = ".modelview/ready"
            await client.put_object(Bucket=settings.s3_bucket, Key=key, Body=b"ok")
            response = await client.get_object(Bucket=settings.s3_bucket, Key=key)
            async with response["Body"] as body:
                await body.read()
        except EndpointConnectionError as exc:
            raise ConnectionError(str(exc)) from exc
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in TRANSIENT:
                raise
            raise ConnectionError(str(exc)) from exc


def ensure_ready_sync(settings: Settings) -> None:
    run_sync(ensure_ready(settings))
