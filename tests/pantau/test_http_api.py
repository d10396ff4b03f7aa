"""The root HTTP app: Pantau's own routes and contributed sub-apps mounted at their prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.metrics import Metrics
from pantau.http_api import Check, SubApp, build_app


class Probe:
    reason = ""

    async def __call__(self) -> str:
        return self.reason


def _echo_app() -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("", listing)
    app.router.add_get("/{id}", listing)
    return app


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[Any, Any], Probe]]:
    metrics = Metrics()
    metrics.describe({"pantau_test_total": ("counter", "Things counted by the test.")})
    metrics.counter("pantau_test_total").inc(3)
    probe = Probe()
    app = build_app(metrics, [Check("mqtt", probe)], [SubApp("/api/things", _echo_app())])
    async with TestClient(TestServer(app)) as c:
        yield c, probe


async def test_healthz_and_metrics(client: Any) -> None:
    c, _ = client
    r = await c.get("/healthz")
    assert (r.status, await r.json()) == (200, {"status": "ok"})
    r = await c.get("/metrics")
    assert r.status == 200 and r.content_type == "text/plain"
    text = await r.text()
    assert "# HELP pantau_test_total Things counted by the test." in text
    assert "pantau_test_total 3" in text


async def test_readyz_names_the_failing_check(client: Any) -> None:
    c, probe = client
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


@pytest.mark.parametrize("prefix", ["api", "/api/"])
def test_a_prefix_starts_with_a_slash_and_does_not_end_with_one(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        SubApp(prefix, web.Application())
