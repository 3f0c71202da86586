"""Bearer-token auth in front of the API: who gets through, and what the others are told."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.settings import Settings
from app.web.auth import middleware


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[TestClient]:
    settings: Settings = request.param
    app = web.Application(middlewares=[middleware(settings)])
    app.router.add_route("*", "/v1/tags", ok)
    app.router.add_get("/healthz", ok)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


TOKEN = Settings(api_token="s3cret-token")


@pytest.mark.parametrize("client", [TOKEN], indirect=True)
async def test_writes_need_the_token_and_reads_do_not_by_default(client: TestClient) -> None:
    missing = await client.post("/v1/tags")
    assert missing.status == 401 and "bearer token is required" in (await missing.json())["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/v1/tags", headers={"Authorization": "Bearer nope"})
    body = await wrong.text()
    assert wrong.status == 403 and "s3cret" not in body and "nope" not in body
    basic = await client.post("/v1/tags", headers={"Authorization": "Basic s3cret-token"})
    assert basic.status == 401
    right = await client.post("/v1/tags", headers={"Authorization": "Bearer s3cret-token"})
    assert right.status == 200
    assert (await client.get("/v1/tags")).status == 200


@pytest.mark.parametrize("client", [TOKEN.with_(auth_reads=True)], indirect=True)
async def test_reads_too_when_asked_but_never_the_health_probe(client: TestClient) -> None:
    assert (await client.get("/v1/tags")).status == 401
    assert (await client.get("/healthz")).status == 200
    headers = {"Authorization": "Bearer s3cret-token"}
    assert (await client.get("/v1/tags", headers=headers)).status == 200


@pytest.mark.parametrize("client", [Settings()], indirect=True)
async def test_no_token_set_means_no_auth(client: TestClient) -> None:
    assert (await client.post("/v1/tags")).status == 200


def test_the_token_is_never_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(TOKEN)
    assert Settings.from_env({"MODELVIEW_AUTH_READS": "true"}).auth_reads is True
