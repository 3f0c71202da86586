"""The object store as the stores use it: whole objects by key. S3 in production
(`app.s3.S3Objects`); a dictionary in tests."""

from __future__ import annotations

from typing import Protocol


class Objects(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(
        self, key: str, data: bytes, *, if_absent: bool = False, content_type: str | None = None
    ) -> bool: ...

    async def keys(self, prefix: str, after: str = "") -> list[str]: ...

    async def folders(self, prefix: str) -> list[str]: ...

    async def close(self) -> None: ...
