"""The HTTP app (aiohttp): health, readiness and metrics, plus the sub-apps packages contribute.

Pantau's own routes:

- ``GET /healthz``: 200 while the process runs.
- ``GET /readyz``: 200 when the broker is connected and the database answers, else 503; the
  JSON body says which check failed and why.
- ``GET /metrics``: Prometheus text format (HELP texts come from the components that count).

Everything else is contributed: a package exposes a function that builds an
``aiohttp.web.Application`` whose routes are relative to one prefix (``devices.api.devices_api``
for ``/api/devices``; the alerts API, next, for ``/api/alerts``), and the composition root
(`pantau.app`) wraps it in a `SubApp` record: the prefix, the app, the role a caller needs to
read it (``GET``/``HEAD``) and the role needed for every other method. `build_app` mounts each
one with ``add_subapp``. The contract for a contributed app:

- it owns only the paths under its prefix (prefixes never nest or repeat);
- it answers JSON, errors as ``{"error": "..."}`` with a 4xx status;
- it does no authentication of its own: the roles in its `SubApp` record are the policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from core.metrics import Metrics

Role = Literal["viewer", "operator", "admin"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    probe: Callable[[], Awaitable[str]]  # "" when healthy, else the reason


@dataclass(frozen=True, slots=True)
class SubApp:
    """A package's contribution to the HTTP API: ``app`` served under ``prefix`` (e.g.
    ``/api/devices``: starts with ``/``, no trailing ``/``); a caller needs ``read_role`` for
    GET and HEAD and ``write_role`` for any other method."""

    prefix: str
    app: web.Application
    read_role: Role = "viewer"
    write_role: Role = "admin"

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"sub-app prefix {self.prefix!r}: must start with '/' and not "
                             "end with one")


def build_app(metrics: Metrics, checks: Sequence[Check],
              subapps: Sequence[SubApp] = ()) -> web.Application:
    """The root app: Pantau's own routes, then each of ``subapps`` mounted at its prefix."""

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

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    for sub in subapps:
        app.add_subapp(sub.prefix, sub.app)
    return app


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving; the caller awaits ``runner.cleanup()`` to stop."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
