"""`InfluxV2Sink`: InfluxDB 2.x/3.x through influxdb-client's async client (``/api/v2/write``,
org + bucket + token). Contract and errors: `ingest.influx_sink`, `ingest.influx_errors`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from core.batch import TelemetryBatch
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.influx_base import SinkBase
from ingest.influx_errors import http_error, transport_error
from ingest.schema import tier_target
from ingest.settings import InfluxSettings
from processors.domain.derived import Tier


class InfluxV2Sink(SinkBase):
    """InfluxDB 2.x/3.x through influxdb-client's async client (org, bucket, token).
    Constructing does no I/O; the client (and its aiohttp session) lives between enter and
    exit."""

    def __init__(self, settings: InfluxSettings, table: SeriesTable) -> None:
        super().__init__(settings, table)
        s = settings
        self._where = f"InfluxDB {s.url.rstrip('/')} bucket {s.bucket!r} (org {s.org!r})"
        self._fix = (f"check influx.token and that it may write to bucket {s.bucket!r} of org "
                     f"{s.org!r}, and that both exist")
        self._client: InfluxDBClientAsync | None = None
        self._write_api: WriteApiAsync | None = None

    async def __aenter__(self) -> Self:
        s = self.settings
        self._client = InfluxDBClientAsync(url=s.url, token=s.token.reveal(), org=s.org,
                                           timeout=int(s.timeout_s * 1000))
        self._write_api = self._client.write_api()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
            self._client = self._write_api = None

    async def write(self, batch: TelemetryBatch) -> None:
        # Encoding a 5,000-reading batch is milliseconds of CPU: off the event loop, so the
        # MQTT reads and /healthz go on meanwhile (write() is never concurrent: one encoder).
        body = await asyncio.to_thread(self._body, batch, self._where)
        await self._post(body, self.settings.bucket, self._where)

    async def write_lines(self, lines: Sequence[str], *, label: str = "lines") -> None:
        where = f"{self._where} ({label})"
        await self._post(self._lines_body(lines, where), self.settings.bucket, where)

    async def write_tier(self, tier: Tier) -> None:
        bucket = tier_target(self.settings, tier.resolution_s)
        where = f"InfluxDB {self.settings.url.rstrip('/')} bucket {bucket!r}"
        try:
            await self._post(self._tier_body(tier, where), bucket, where)
        except SinkError as e:
            if e.status == 404:
                raise self._missing_tier(e, tier) from e
            raise

    async def _post(self, body: bytes, bucket: str, where: str) -> None:
        if not body:
            return
        if self._write_api is None:
            raise RuntimeError("use the sink as `async with sink:` before writing")
        try:
            await self._write_api.write(bucket=bucket, org=self.settings.org, record=body,
                                        write_precision=WritePrecision.NS)  # type: ignore[arg-type]
        except ApiException as e:
            raise self._api_error(e, where) from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise transport_error(e, where) from e

    async def ping(self) -> None:
        """GET /ping through the client: returns when it answers, else raises `SinkError`."""
        if self._client is None:
            raise RuntimeError("use the sink as `async with sink:` before pinging")
        try:
            await self._client.ping()
        except ApiException as e:
            raise self._api_error(e) from e
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise transport_error(e, self._where) from e

    def _api_error(self, e: ApiException, where: str | None = None) -> SinkError:
        where = where or self._where
        status = int(e.status or 0)
        if not status:                                   # no response: the client's own error
            return SinkError(f"{where}: {e.reason}", retryable=True)
        headers = {str(k): str(v) for k, v in dict(e.headers or {}).items()}
        detail = str(getattr(e, "message", "") or e.reason or "")
        return http_error(status, detail, headers, where, self._fix)
