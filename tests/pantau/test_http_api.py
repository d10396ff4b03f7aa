"""The root HTTP app over a real aiohttp server: Pantau's open routes, contributed sub-apps
mounted at their prefix, JSON for every failure, the body limit, no traceback to a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.metrics import Metrics
from pantau.http_api import MAX_BODY_BYTES, Check, SubApp, build_app
from pantau.tokens import TokenFile


class Probe:
    reason = ""

    async def __call__(self) -> str:
        return self.reason


def things_app() -> web.Application:
    """A contributed sub-app: echoes, accepts a JSON body, and has a bug."""
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    async def post(request: web.Request) -> web.Response:
        return web.json_response({"got": len(await request.read())})

    async def bug(request: web.Request) -> web.Response:
        raise ZeroDivisionError("secret detail /var/lib/pantau")

    app = web.Application()
    app.router.add_get("", echo)
    app.router.add_post("", post)
    app.router.add_get("/bug", bug)
    app.router.add_get("/{id}", echo)
    return app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Probe, Metrics]]:
    metrics = Metrics()
    metrics.describe({"pantau_test_total": ("counter", "Things counted by the test.")})
    metrics.counter("pantau_test_total").inc(3)
    probe = Probe()
    tokens = TokenFile(tmp_path / "tokens.json")
    _, token = tokens.create("admin", "admin")
    app = build_app(metrics, [Check("mqtt", probe)], [SubApp("/api/things", things_app())],
                    tokens=tokens)
    async with TestClient(TestServer(app),
                          headers={"Authorization": f"Bearer {token}"}) as c:
        yield c, probe, metrics


async def test_healthz_and_metrics(client: Any) -> None:
    c, _, _ = client
    r = await c.get("/healthz")
    assert (r.status, await r.json()) == (200, {"status": "ok"})
    r = await c.get("/metrics")
    assert r.status == 200 and r.content_type == "text/plain"
    text = await r.text()
    assert "# HELP pantau_test_total Things counted by the test." in text
    assert "pantau_test_total 3" in text


async def test_readyz_names_the_failing_check(client: Any) -> None:
    c, probe, _ = client
    r = await c.get("/readyz")
    assert (r.status, await r.json()) == (200, {"ready": True, "checks": {"mqtt": "ok"}})
    probe.reason = "not connected"
    r = await c.get("/readyz")
    assert (r.status, await r.json()) == (503, {"ready": False,
                                                "checks": {"mqtt": "not connected"}})


@pytest.mark.parametrize("path", ["/api/things", "/api/things/x-1"])
async def test_a_sub_app_serves_under_its_prefix(client: Any, path: str) -> None:
    r = await client[0].get(path)
    assert (r.status, await r.json()) == (200, {"path": path})


@pytest.mark.parametrize(("method", "path", "status", "error"), [
    pytest.param("GET", "/nope", 404, "no such resource: /nope", id="404-root"),
    pytest.param("GET", "/api/things/x/y", 404, "no such resource: /api/things/x/y",
                 id="404-sub-app"),
    pytest.param("DELETE", "/healthz", 405, "method DELETE is not allowed on /healthz; "
                 "allowed: GET, HEAD", id="405"),
    pytest.param("GET", "/api/things/bug", 500, "internal error (logged by Pantau)", id="500"),
])
async def test_every_failure_is_json(client: Any, method: str, path: str, status: int,
                                     error: str, caplog: pytest.LogCaptureFixture) -> None:
    c, _, metrics = client
    r = await c.request(method, path)
    assert r.status == status and r.content_type == "application/json"
    assert await r.json() == {"error": error}
    assert f'pantau_http_errors_total{{status="{status}"}} 1' in metrics.render()
    if status == 500:  # the traceback is in the log, not in the answer
        assert "ZeroDivisionError" in caplog.text


async def test_a_body_above_the_limit_is_a_413(client: Any) -> None:
    c, _, _ = client
    r = await c.post("/api/things", data=b"x" * MAX_BODY_BYTES)
    assert (r.status, await r.json()) == (200, {"got": MAX_BODY_BYTES})
    r = await c.post("/api/things", data=b"x" * (MAX_BODY_BYTES + 1))
    assert r.status == 413
    assert await r.json() == {"error": f"request body too large: at most {MAX_BODY_BYTES} "
                                       "bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024

    r = await c.post("/api/things", data=chunks())
    assert r.status == 413 and (await r.json())["error"].startswith("request body too large")


@pytest.mark.parametrize("prefix", ["api", "/api/"])
def test_a_prefix_starts_with_a_slash_and_does_not_end_with_one(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        SubApp(prefix, web.Application())
