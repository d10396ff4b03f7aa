"""Bearer tokens with roles in front of contributed sub-apps, over a real aiohttp server:
401 without a (valid) token, 403 below the role a route needs, the open routes stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.metrics import Metrics
from pantau.http_api import MAX_BODY_BYTES, Check, SubApp, build_app
from pantau.http_auth import TOKEN
from pantau.tokens import TokenFile


def echo_app() -> web.Application:
    async def who(request: web.Request) -> web.Response:
        return web.json_response({"name": request[TOKEN].name})

    app = web.Application()
    app.router.add_get("", who)
    app.router.add_post("", who)
    return app


def link_app() -> web.Application:
    """A public sub-app: its own authority (here: the path), no bearer token."""
    async def page(request: web.Request) -> web.Response:
        if request.match_info["link"] != "signed":
            return web.Response(status=403, text="<p>forged</p>", content_type="text/html")
        return web.Response(text=f"<p>{request.method} ok, token: {TOKEN in request}</p>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{link}", page)
    app.router.add_post("/{link}", page)
    return app


class Api:
    def __init__(self, client: TestClient[Any, Any], tokens: TokenFile) -> None:
        self.client, self.tokens = client, tokens

    async def call(self, method: str, path: str, token: str | None = None,
                   status: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.client.request(method, path, headers=headers)
        assert r.status == status, await r.text()
        assert r.content_type == "application/json"
        return await r.json()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async def ok() -> str:
        return ""
    tokens = TokenFile(tmp_path / "state" / "api-tokens.json")
    app = build_app(Metrics(), [Check("mqtt", ok)],
                    [SubApp("/api/devices", echo_app(), write_role="admin"),
                     SubApp("/api/alerts", echo_app(), write_role="operator"),
                     SubApp("/ack", link_app(), public=True)], tokens=tokens)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def test_without_a_token_file_the_api_refuses_and_says_how_to_make_one(api: Api) -> None:
    r = await api.client.get("/api/devices")
    assert r.status == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="pantau"'
    body = await r.json()
    assert body["error"].startswith("no API tokens exist yet")
    assert "pantau tokens create --role viewer --name NAME" in body["error"]
    for path in ("/healthz", "/readyz", "/metrics"):  # open, and they say nothing secret
        assert (await api.client.get(path)).status == 200


@pytest.mark.parametrize(("header", "error", "challenge"), [
    pytest.param(None, "authentication required", 'Bearer realm="pantau"', id="none"),
    pytest.param("Basic YWxpY2U6eA==", "authentication required", 'Bearer realm="pantau"',
                 id="basic"),
    pytest.param("Bearer ", "authentication required", 'Bearer realm="pantau"', id="empty"),
    pytest.param("Bearer pantau.00000000." + "a" * 43, "invalid token",
                 'Bearer realm="pantau", error="invalid_token"', id="unknown"),
    pytest.param("Bearer letmein", "invalid token",
                 'Bearer realm="pantau", error="invalid_token"', id="malformed"),
])
async def test_no_valid_token_is_a_401(api: Api, header: str | None, error: str,
                                       challenge: str) -> None:
    api.tokens.create("alice", "admin")
    r = await api.client.get("/api/devices",
                             headers={"Authorization": header} if header else {})
    assert r.status == 401 and r.headers["WWW-Authenticate"] == challenge
    assert (await r.json())["error"].startswith(error)


@pytest.mark.parametrize(("role", "method", "path", "status"), [
    pytest.param("viewer", "GET", "/api/devices", 200, id="viewer-reads"),
    pytest.param("viewer", "HEAD", "/api/devices", 200, id="viewer-head"),
    pytest.param("viewer", "POST", "/api/devices", 403, id="viewer-cannot-change-devices"),
    pytest.param("viewer", "POST", "/api/alerts", 403, id="viewer-cannot-ack"),
    pytest.param("operator", "POST", "/api/alerts", 200, id="operator-acks"),
    pytest.param("operator", "POST", "/api/devices", 403, id="operator-cannot-change-devices"),
    pytest.param("admin", "POST", "/api/devices", 200, id="admin-changes-devices"),
    pytest.param("admin", "POST", "/api/alerts", 200, id="admin-acks"),
])
async def test_the_role_a_route_needs_comes_from_its_sub_app(
        api: Api, role: str, method: str, path: str, status: int) -> None:
    _, token = api.tokens.create("who", role)
    r = await api.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert r.status == status, await r.text()
    if method == "HEAD":
        return
    body = await r.json()
    if status == 200:
        assert body == {"name": "who"}
    else:
        assert body == {"error": f"token 'who' has role {role}; {method} {path} needs "
                                 f"{'admin' if path == '/api/devices' else 'operator'}"}


async def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    _, token = api.tokens.create("alice", "viewer")
    api.tokens.create("bob", "viewer")
    assert await api.call("GET", "/api/devices", token) == {"name": "alice"}
    TokenFile(api.tokens.path).revoke("alice")  # as `pantau tokens revoke` would
    body = await api.call("GET", "/api/devices", token, status=401)
    assert body["error"].startswith("invalid token")


async def test_an_unusable_token_file_is_a_503_with_the_reason_only_in_the_log(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    _, token = api.tokens.create("alice", "viewer")
    api.tokens.path.chmod(0o666)
    body = await api.call("GET", "/api/devices", token, status=503)
    assert body == {"error": "authentication unavailable: the API token file cannot be used "
                             "(the reason is in Pantau's log)"}
    assert "group or others may write it" in caplog.text
    assert str(api.tokens.path) not in body["error"]
    api.tokens.path.chmod(0o600)
    assert await api.call("GET", "/api/devices", token) == {"name": "alice"}


@pytest.mark.parametrize("tokens", [pytest.param(False, id="no-token-file"),
                                    pytest.param(True, id="tokens-exist")])
async def test_a_public_sub_app_needs_no_token_and_the_api_still_does(api: Api,
                                                                      tokens: bool) -> None:
    if tokens:
        api.tokens.create("alice", "admin")
    for method in ("GET", "POST"):
        r = await api.client.request(method, "/ack/signed")
        assert r.status == 200 and await r.text() == f"<p>{method} ok, token: False</p>"
    r = await api.client.post("/ack/forged")  # the app's own refusal, as it wrote it
    assert r.status == 403 and r.content_type == "text/html"
    assert (await api.client.get("/api/devices")).status == 401
    r = await api.client.get("/ack/signed/more")  # the root's errors cover it too
    assert r.status == 404 and (await r.json())["error"] == "no such resource: /ack/signed/more"
    r = await api.client.post("/ack/signed", data=b"x" * (MAX_BODY_BYTES + 1))
    assert r.status == 413


@pytest.mark.parametrize("prefix", ["/api", "/api/ack"])
def test_a_public_sub_app_cannot_live_under_api(prefix: str) -> None:
    with pytest.raises(ValueError, match="public"):
        SubApp(prefix, web.Application(), public=True)
    SubApp("/apis", web.Application(), public=True)  # only a name that looks alike
