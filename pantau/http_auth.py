"""Who may call a contributed sub-app: bearer tokens checked against its `SubApp` roles.

`auth_middleware` looks up the sub-app a request was routed to (``request.match_info.apps``)
and the role its record asks for the method (``read_role`` for GET and HEAD, ``write_role``
otherwise), then the ``Authorization: Bearer <token>`` header against `pantau.tokens`. Routes
outside every guarded sub-app (``/healthz``, ``/readyz``, ``/metrics``, public sub-apps such as
``/ack``, and 404/405 answers) pass unchecked. Refusals are JSON ``{"error": ...}``:

- 401 with ``WWW-Authenticate: Bearer`` when no token file exists yet (the message says how to
  create one), when the header is missing or not a bearer token, or when the token is unknown,
  malformed or revoked;
- 403 when the token is valid but its role is below the one the route needs;
- 503 when the token file cannot be used (unreadable, malformed, writable by others): the
  reason goes to the log, once per distinct reason, never to the client.

The token's record (never the token) is left in ``request[TOKEN]`` for handlers that want to
know who called (an acknowledgement records its author).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pantau.tokens import Role, TokenError, TokenFile, TokenInfo

log = logging.getLogger("pantau.http")

READ_METHODS = frozenset({"GET", "HEAD"})
TOKEN = web.RequestKey("token", TokenInfo)
HOW_TO = ("create one on the Pantau host with `pantau tokens create --role viewer --name NAME` "
          "and send it as 'Authorization: Bearer <token>'")


class Policy(Protocol):
    """What `auth_middleware` needs of a `pantau.http_api.SubApp`."""

    @property
    def read_role(self) -> Role: ...

    @property
    def write_role(self) -> Role: ...


def _refuse(status: int, message: str, *, error: str = "") -> web.Response:
    challenge = 'Bearer realm="pantau"' + (f', error="{error}"' if error else "")
    headers = {"WWW-Authenticate": challenge} if status == 401 else {}
    return web.json_response({"error": message}, status=status, headers=headers)


def auth_middleware(tokens: TokenFile, policies: Mapping[int, Policy]) -> Middleware:
    """``policies``: ``id(sub-app)`` -> its roles, for every mounted sub-app that needs a
    token (a public one has no entry)."""
    last_problem = ""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal last_problem
        policy = next((policies[id(a)] for a in reversed(request.match_info.apps)
                       if id(a) in policies), None)
        if policy is None:
            return await handler(request)
        needed = policy.read_role if request.method in READ_METHODS else policy.write_role
        try:
            known = tokens.current()
        except TokenError as e:
            if str(e) != last_problem:
                log.error("HTTP API refused: the token file cannot be used: %s", e)
                last_problem = str(e)
            return _refuse(503, "authentication unavailable: the API token file cannot be "
                           "used (the reason is in Pantau's log)")
        last_problem = ""
        if not known:
            return _refuse(401, f"no API tokens exist yet: {HOW_TO}")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _refuse(401, f"authentication required: send 'Authorization: Bearer "
                           f"<token>' (no token yet? {HOW_TO})")
        info = tokens.verify(token.strip())
        if info is None:
            return _refuse(401, "invalid token: unknown, malformed or revoked",
                           error="invalid_token")
        if not info.allows(needed):
            log.info("HTTP API: token %s (%r, %s) refused %s %s, which needs %s", info.id,
                     info.name, info.role, request.method, request.path, needed)
            return _refuse(403, f"token {info.name!r} has role {info.role}; {request.method} "
                           f"{request.path} needs {needed}")
        request[TOKEN] = info
        return await handler(request)

    return auth
