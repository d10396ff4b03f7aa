"""`InfluxV1Sink`: InfluxDB 1.x through ``POST /write`` (database + retention policy), with
aiohttp. Contract and errors: `ingest.influx_sink`, `ingest.influx_errors`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp

from core.batch import TelemetryBatch
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.influx_base import SinkBase
from ingest.influx_errors import http_error, json_error, transport_error
from ingest.schema import tier_target
from ingest.settings import InfluxSettings
from processors.domain.derived import Tier


class InfluxV1Sink(SinkBase):
    """InfluxDB 1.x: ``POST /write?db=&rp=&precision=ns``, basic auth when ``username`` is
    set. Constructing does no I/O; one aiohttp session lives between enter and exit."""

    def __init__(self, settings: InfluxSettings, table: SeriesTable) -> None:
        super().__init__(settings, table)
        s = settings
        self._url = s.url.rstrip("/")
        self._where = f"InfluxDB {self._url} database {s.database!r}"
        self._params = {"db": s.database, "precision": "ns",
                        **({"rp": s.retention_policy} if s.retention_policy else {})}
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if s.username:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(s.username,
                                                                       s.password.reveal())
        self._fix = (f"check influx.username/password and that {s.username or 'the user'!r} "
                     f"may WRITE on database {s.database!r}, and that the database exists")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s), headers=self._headers)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the sink as `async with sink:` before writing")
        return self._session

    async def write(self, batch: TelemetryBatch) -> None:
        # Encoding a 5,000-reading batch is milliseconds of CPU: off the event loop, so the
        # MQTT reads and /healthz go on meanwhile (write() is never concurrent: one encoder).
        body = await asyncio.to_thread(self._body, batch, self._where)
        await self._post(body, self._params, self._where)

    async def write_lines(self, lines: Sequence[str], *, label: str = "lines") -> None:
        await self._post(self._lines_body(lines, f"{self._where} ({label})"), self._params,
                         f"{self._where} ({label})")

    async def write_tier(self, tier: Tier) -> None:
        rp = tier_target(self.settings, tier.resolution_s)
        where = f"{self._where} retention policy {rp!r}"
        try:
            await self._post(self._tier_body(tier, where), {**self._params, "rp": rp}, where)
        except SinkError as e:
            if "retention policy not found" in str(e):
                raise self._missing_tier(e, tier) from e
            raise

    async def _post(self, body: bytes, params: dict[str, str], where: str) -> None:
        if not body:
            return
        try:
            async with self._http().post(f"{self._url}/write", params=params,
                                         data=body) as resp:
                if resp.status // 100 == 2:
                    return
                text = await resp.text(errors="replace")
                raise http_error(resp.status, json_error(text), resp.headers, where,
                                 self._fix)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise transport_error(e, where) from e

    async def ping(self) -> None:
        """GET /ping: returns when the server answers 2xx, else raises `SinkError`."""
        try:
            async with self._http().get(f"{self._url}/ping") as resp:
                if resp.status // 100 != 2:
                    raise http_error(resp.status, await resp.text(errors="replace"),
                                     resp.headers, self._where, self._fix)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise transport_error(e, self._where) from e
