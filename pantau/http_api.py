"""The HTTP API (aiohttp): health, readiness, Prometheus metrics and the device list.

- ``GET /healthz``: 200 while the process runs.
- ``GET /readyz``: 200 when the broker is connected and the database answers, else 503; the
  JSON body says which check failed and why.
- ``GET /metrics``: Prometheus text format (see `pantau.metrics.HELP`).
- ``GET /api/devices``: ``[{"id", "kind", "site", "lat", "lon", "status", "metrics":
  [{"name", "unit"}]}]`` from the registry, with the last LWT status (online/offline/unknown).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from devices.registry import Registry
from pantau.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Callable[[], Awaitable[str]]  # "" when healthy, else the reason


def build_app(registry: Registry, metrics: Metrics, checks: list[Check],
              device_status: Mapping[str, str]) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        results = {c.name: await c.probe() for c in checks}
        ready = not any(results.values())
        body = {"ready": ready, "checks": {k: (v or "ok") for k, v in results.items()}}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics_view(request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain",
                            charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})

    async def devices(request: web.Request) -> web.Response:
        return web.json_response([
            {"id": d.id, "kind": d.kind, "site": d.site, "lat": d.lat, "lon": d.lon,
             "name": d.name, "interval_s": d.interval_s,
             "status": device_status.get(d.id, "unknown"),
             "metrics": [{"name": m.name, "unit": m.unit} for m in d.metrics]}
            for d in registry.devices])

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/api/devices", devices)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller awaits ``runner.cleanup()`` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
