"""InfluxDB sinks: `InfluxV1Sink` (``/write``, InfluxDB 1.x) and `InfluxV2Sink`
(``/api/v2/write`` through influxdb-client; InfluxDB 2.x/3.x and compatible stores).

Contract (the pipeline's ``Sink``): used as ``async with sink:`` (entering opens the HTTP
session and does no request; leaving closes it). `write` is never called concurrently, makes
ONE attempt and returns when the database answered 2xx, so the caller may then acknowledge the
readings. Only OK rows are written (`LineEncoder`); a batch without any makes no request.
Retries, backoff and splitting a refused batch live in the pipeline runner, not here.

Errors: every failure is a `SinkError` whose ``message`` names the URL and the database or
bucket, ``status`` is the HTTP status (None without a response) and ``retryable`` says which
of two things the caller should do:

===================================  =========  ===========================================
what happened                        retryable  meaning
===================================  =========  ===========================================
network error, timeout, 5xx, 429     yes        try the same batch later (honour
                                                ``retry_after``, from ``Retry-After`` seconds)
401, 403, 404, any other status      yes        configuration (credentials, missing database
                                                or bucket): the data is fine and stays
                                                unacknowledged in the broker until an
                                                operator fixes it; the message says what
400, 413, 422                        no         the data was refused (field type conflict,
                                                partial write, body too large): split the
                                                batch to isolate the bad readings
a non-finite OK value                no         ``status`` None: a broken invariant upstream
===================================  =========  ===========================================

So ``retryable=False`` means exactly "bad data" and ``True`` means "retry later".
`ping()` checks that the server answers (raising the same `SinkError`), for readiness.

Tiers: `write_tier` makes one attempt to write a `processors.domain.derived.Tier` (encoded by
`TierEncoder`) into the retention policy (v1, same database) or bucket (v2) that
`ingest.schema.tier_target` names (``tier_1h`` / ``<bucket>_1h``). Its errors map as above,
except that a missing retention policy or bucket is ``retryable=False`` (a setup step was
skipped; the caller skips the tier rather than hold back the readings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from ingest.lineproto import LineEncoder, TierEncoder
from ingest.schema import tier_setup, tier_target
from ingest.settings import InfluxSettings
from processors.domain.derived import Tier

BAD_DATA = frozenset({400, 413, 422})
_CONFIG = {401: "authentication failed", 403: "not allowed", 404: "not found"}


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form; an HTTP date is ignored)."""
    value = (headers or {}).get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def http_error(status: int, detail: str, headers: Mapping[str, str] | None,
               where: str, fix: str) -> SinkError:
    """Map an HTTP error answer to a `SinkError` (see the module docstring's table)."""
    detail = " ".join(detail.split())[:300] or "no detail"
    if status in BAD_DATA:
        return SinkError(f"{where} refused the data: HTTP {status}: {detail}",
                         retryable=False, status=status)
    if status in _CONFIG:
        return SinkError(f"{where}: HTTP {status} {_CONFIG[status]}: {detail}; {fix} (readings "
                         "stay unacknowledged in the broker until then)",
                         retryable=True, status=status, retry_after=retry_after_s(headers))
    return SinkError(f"{where}: HTTP {status}: {detail}", retryable=True, status=status,
                     retry_after=retry_after_s(headers))


def transport_error(e: BaseException, where: str) -> SinkError:
    kind = "timed out" if isinstance(e, TimeoutError) else "unreachable"
    return SinkError(f"{where} {kind}: {type(e).__name__}: {e}", retryable=True)


class _Base:
    def __init__(self, settings: InfluxSettings, table: SeriesTable) -> None:
        self.settings = settings
        self.encoder = LineEncoder(table)
        self.tier_encoder = TierEncoder(table)

    def _tier_body(self, tier: Tier, where: str) -> bytes:
        try:
            return self.tier_encoder.encode(tier)
        except ValueError as e:
            raise SinkError(f"{where}: cannot encode: {e}", retryable=False) from e

    def _missing_tier(self, e: SinkError, tier: Tier) -> SinkError:
        fix = tier_setup(self.settings, tier.resolution_s)
        return SinkError(f"{e}; the tier {tier_target(self.settings, tier.resolution_s)!r} does "
                         f"not exist: create it once with `{fix}`", retryable=False,
                         status=e.status)

    def _body(self, batch: TelemetryBatch, where: str) -> bytes:
        try:
            return self.encoder.encode(batch)
        except ValueError as e:
            raise SinkError(f"{where}: cannot encode: {e}", retryable=False) from e


class InfluxV1Sink(_Base):
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
        await self._post(self._body(batch, self._where), self._params, self._where)

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
                raise http_error(resp.status, _json_error(text), resp.headers, where,
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


def _json_error(text: str) -> str:
    """InfluxDB 1.x answers ``{"error": "..."}``; keep the text otherwise."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    return str(doc.get("error", text)) if isinstance(doc, dict) else text


class InfluxV2Sink(_Base):
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
        await self._post(self._body(batch, self._where), self.settings.bucket, self._where)

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


InfluxSink = InfluxV1Sink | InfluxV2Sink


def make_sink(settings: InfluxSettings, table: SeriesTable) -> InfluxSink:
    """The sink for ``settings.api`` (``v1`` or ``v2``); no I/O until ``async with``."""
    return InfluxV2Sink(settings, table) if settings.api == "v2" else InfluxV1Sink(settings, table)


__all__ = ["BAD_DATA", "InfluxSink", "InfluxV1Sink", "InfluxV2Sink", "http_error", "make_sink",
           "retry_after_s", "tier_setup", "tier_target", "transport_error"]
