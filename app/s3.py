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


class S3Objects:
    """The bucket as whole objects by key, through one client opened on first use.

    Long-lived: a worker or a command opens it once and `close`s it at the end, instead of a
    client per call. It belongs to the event loop it was first used on.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._opened: Any = None
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            self._opened = s3_client(self.settings)
            self._client = await self._opened.__aenter__()
        return self._client

    async def close(self) -> None:
        if self._opened is not None:
            opened, self._opened, self._client = self._opened, None, None
            await opened.__aexit__(None, None, None)

    async def get(self, key: str) -> bytes | None:
        client = await self._s3()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key)
        except client.exceptions.NoSuchKey:
            return None
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def put(
        self, key: str, data: bytes, *, if_absent: bool = False, content_type: str | None = None
    ) -> bool:
        """Write `key`; with `if_absent`, only if nothing is there (False if something was)."""
        client = await self._s3()
        extra: dict[str, str] = {"IfNoneMatch": "*"} if if_absent else {}
        if content_type:
            extra["ContentType"] = content_type
        try:
            await client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if if_absent and (status in (409, 412) or code == "PreconditionFailed"):
                return False
            raise
        return True

    async def keys(self, prefix: str, after: str = "") -> list[str]:
        """Every key under `prefix`, in key order, after `after` if given."""
        client = await self._s3()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if after:
            kwargs["StartAfter"] = after
        found: list[str] = []
        async for page in client.get_paginator("list_objects_v2").paginate(**kwargs):
            found += [item["Key"] for item in page.get("Contents", [])]
        return found

    async def folders(self, prefix: str) -> list[str]:
        """The names one level below `prefix` (which ends with '/')."""
        client = await self._s3()
        names: list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names += [
                p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])
            ]
        return names
