"""The HTTP app (aiohttp): health, readiness and metrics, plus the sub-apps packages contribute.

Pantau's own routes:

- ``GET /healthz``: 200 while the process runs.
- ``GET /readyz``: 200 when the broker is connected and the database answers, else 503; the
  JSON body says which check failed, in words that name no URL, user, host or database.
- ``GET /metrics``: Prometheus text format (HELP texts come from the components that count).

These three are open: probes and scrapers call them without credentials, and they carry
counters and check names only.

Everything else is contributed: a package exposes a function that builds an
``aiohttp.web.Application`` whose routes are relative to one prefix (``devices.api.devices_api``
for ``/api/devices``; the alerts API, next, for ``/api/alerts``), and the composition root
(`pantau.app`) wraps it in a `SubApp` record: the prefix, the app, the role a caller needs to
read it (``GET``/``HEAD``) and the role needed for every other method. `build_app` mounts each
one with ``add_subapp``. The contract for a contributed app:

- it owns only the paths under its prefix (prefixes never nest or repeat);
- it answers JSON, errors as ``{"error": "..."}`` with a 4xx status;
- it does no authentication of its own: the roles in its `SubApp` record are the policy,
  enforced for it by `pantau.http_auth` with the tokens of `pantau.tokens`;
- it validates its query parameters and bodies, and answers 400 naming the bad one.

A *public* sub-app (``SubApp(..., public=True)``) is the exception: no token is asked for,
because each request carries its own authority, which the app checks (the alerts' one-click
acknowledgement links, ``/ack``: an HMAC-signed, expiring link that works from a phone's mail
or chat app, where no bearer token can be). It may answer HTML, and it never lives under
``/api``, where every route needs a token.

For every route, contributed or not: a request body above `MAX_BODY_BYTES` is a 413; any
failure is JSON ``{"error": "..."}`` (aiohttp's own 404/405/413 included); an exception in a
handler is logged with its traceback and answered 500 ``{"error": "internal error"}``, never
with the traceback. Every 4xx/5xx answer is counted in ``pantau_http_errors_total{status}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from core.metrics import Metrics
from pantau.http_auth import auth_middleware
from pantau.tokens import Role, TokenFile

log = logging.getLogger("pantau.http")

MAX_BODY_BYTES = 64 * 1024
HELP = {"pantau_http_errors_total": ("counter", "HTTP answers with a 4xx or 5xx status, by "
                                     "status (401/403: refused tokens; 500: see the log).")}


@dataclass(frozen=True, slots=True)
class Check:
    """A readiness check: ``probe`` returns "" when healthy, else the reason /readyz shows
    as is, so it must name no URL, user, host or database (details belong in the log)."""

    name: str
    probe: Callable[[], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class SubApp:
    """A package's contribution to the HTTP API: ``app`` served under ``prefix`` (e.g.
    ``/api/devices``: starts with ``/``, no trailing ``/``); a caller needs ``read_role`` for
    GET and HEAD and ``write_role`` for any other method, unless ``public``: then no token is
    checked (the app authenticates each request itself; not under ``/api``)."""

    prefix: str
    app: web.Application
    read_role: Role = "viewer"
    write_role: Role = "admin"
    public: bool = False

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"sub-app prefix {self.prefix!r}: must start with '/' and not "
                             "end with one")
        if self.public and (self.prefix + "/").startswith("/api/"):
            raise ValueError(f"sub-app prefix {self.prefix!r}: a public sub-app cannot live "
                             "under /api, where every route needs a token")


def _errors_middleware(metrics: Metrics) -> Middleware:
    """JSON for every failure, a count per status, no traceback to the client."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if (request.content_length or 0) > MAX_BODY_BYTES:
                raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length or 0)
            response = await handler(request)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            headers = {k: v for k, v in e.headers.items()
                       if k.lower() not in ("content-type", "content-length")}
            response = web.json_response({"error": _message(e, request)}, status=e.status,
                                         headers=headers)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            response = web.json_response({"error": "internal error (logged by Pantau)"},
                                         status=500)
        if response.status >= 400:
            metrics.counter("pantau_http_errors_total", status=str(response.status)).inc()
        return response

    return errors


def _message(e: web.HTTPException, request: web.Request) -> str:
    if isinstance(e, web.HTTPNotFound):
        return f"no such resource: {request.path}"
    if isinstance(e, web.HTTPMethodNotAllowed):
        return (f"method {request.method} is not allowed on {request.path}; allowed: "
                f"{', '.join(sorted(e.allowed_methods))}")
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return f"request body too large: at most {MAX_BODY_BYTES} bytes"
    return e.reason


def build_app(metrics: Metrics, checks: Sequence[Check], subapps: Sequence[SubApp] = (), *,
              tokens: TokenFile) -> web.Application:
    """The root app: Pantau's own routes, then each of ``subapps`` mounted at its prefix and,
    unless public, guarded by ``tokens`` (see `pantau.http_auth`)."""
    metrics.describe(HELP)

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

    policies = {id(sub.app): sub for sub in subapps if not sub.public}
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[_errors_middleware(metrics),
                                       auth_middleware(tokens, policies)])
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
