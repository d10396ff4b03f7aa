"""`FaultProxy`: a small HTTP proxy (aiohttp) between Pantau and the real InfluxDB that
injects HTTP-level faults: answer with a status (503, 429) and ``Retry-After``, or answer
slowly. Everything else is forwarded as it is.

When InfluxDB itself is down the proxy closes the client's connection without an answer, so
Pantau sees a network failure as it would talking to InfluxDB directly (a proxy in front of a
dead server answering 502 would be a different fault). Every request is logged with the
wall-clock time, the path, the status answered and, for a write, the measurements its body
holds and its retention policy (`Seen.what`), so a scenario can count the attempts of one
writer during a fault: Pantau's readings share ``/write`` with its own metrics (measurement
``pantau``, every ``self_metrics.interval_s``), the alerts' events and the tiers. `dump` writes
the log as JSON lines for a kept work directory.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

_MEASUREMENT = re.compile(rb"^((?:[^, \\\n]|\\.)+)", re.MULTILINE)  # up to an unescaped , or space
_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding",
        "keep-alive"}


@dataclass(frozen=True, slots=True)
class Fault:
    paths: tuple[str, ...]
    status: int = 0  # answer this instead of forwarding (0: forward)
    retry_after_s: float | None = None
    delay_s: float = 0.0  # before forwarding


@dataclass(frozen=True, slots=True)
class Seen:
    t: float
    path: str
    status: int  # 0: connection closed without an answer
    what: str = ""  # a write: its body's measurements, sorted, comma-separated (+ ``@rp``)


class FaultProxy:
    """Listens on ``host:port`` (start with `start`, stop with `close`) and forwards to
    ``upstream``; `fail`, `slow` and `heal` change what it does to the next requests."""

    def __init__(self, upstream: str, host: str, port: int) -> None:
        self.upstream, self.host, self.port = upstream.rstrip("/"), host, port
        self.fault: Fault | None = None
        self.seen: list[Seen] = []  # answered (or dropped) requests, by arrival time
        self.arrived: list[Seen] = []  # every request as it arrives (status 0)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail(self, status: int, retry_after_s: float | None = None,
             paths: tuple[str, ...] = ("/write",)) -> None:
        self.fault = Fault(paths, status=status, retry_after_s=retry_after_s)

    def slow(self, delay_s: float, paths: tuple[str, ...] = ("/write",)) -> None:
        self.fault = Fault(paths, delay_s=delay_s)

    def heal(self) -> None:
        self.fault = None

    def count(self, path: str, t0: float, t1: float, what: str | None = None) -> int:
        """Requests for ``path`` that arrived between ``t0`` and ``t1`` (wall clock), only
        those whose `Seen.what` is ``what`` when given."""
        return sum(1 for s in self.seen if s.path == path and t0 <= s.t <= t1
                   and (what is None or s.what == what))

    def dump(self, path: Path) -> None:
        """The answered requests as JSON lines (`Seen`), for a kept work directory."""
        path.write_text("".join(json.dumps(asdict(s)) + "\n" for s in self.seen))

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                             auto_decompress=True)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t, fault = time.time(), self.fault
        self.arrived.append(Seen(t, request.path, 0))
        body = await request.read()
        what = _what(request, body)
        if fault is not None and request.path in fault.paths:
            if fault.status:
                self.seen.append(Seen(t, request.path, fault.status, what))
                headers = {} if fault.retry_after_s is None else {
                    "Retry-After": f"{fault.retry_after_s:g}"}
                return web.json_response({"error": f"injected {fault.status}"},
                                         status=fault.status, headers=headers)
            await asyncio.sleep(fault.delay_s)
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        try:
            async with self._client.request(request.method, self.upstream + request.path_qs,
                                            headers=headers, data=body) as up:
                payload = await up.read()
                out = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
                self.seen.append(Seen(t, request.path, up.status, what))
                return web.Response(status=up.status, body=payload, headers=out)
        except (aiohttp.ClientError, OSError):
            self.seen.append(Seen(t, request.path, 0, what))
            if request.transport is not None:
                request.transport.close()  # the server is gone: so is the connection
            return web.Response(status=502)  # never sent: the connection is closed


def _what(request: web.Request, body: bytes) -> str:
    """A ``/write``'s measurements (sorted, comma-separated), with ``@rp`` when it names a
    retention policy (a tier); empty for any other request."""
    if request.path != "/write":
        return ""
    names = ",".join(sorted({m.decode(errors="replace") for m in _MEASUREMENT.findall(body)}))
    rp = request.query.get("rp")
    return f"{names}@{rp}" if rp else names
