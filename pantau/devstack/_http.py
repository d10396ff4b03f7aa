"""A tiny synchronous HTTP client for the services' setup and the test fixtures."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def request(method: str, url: str, *, data: bytes | None = None,
            auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> Response:
    """One request; any HTTP status comes back as a `Response` (never raised), while
    connection errors raise `OSError`."""
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.read())
