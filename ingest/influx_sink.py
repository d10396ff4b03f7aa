"""InfluxDB sinks: `InfluxV1Sink` (``/write``, InfluxDB 1.x; `ingest.influx_v1`) and
`InfluxV2Sink` (``/api/v2/write`` through influxdb-client, InfluxDB 2.x/3.x and compatible
stores; `ingest.influx_v2`), chosen by `make_sink`.

Contract (the pipeline's ``Sink``): used as ``async with sink:`` (entering opens the HTTP
session and does no request; leaving closes it). `write` is never called concurrently, makes
ONE attempt and returns when the database answered 2xx, so the caller may then acknowledge the
readings. Only OK rows are written (`LineEncoder`); a batch without any makes no request.
Retries, backoff and splitting a refused batch live in the pipeline runner, not here.

Errors: every failure is a `SinkError` (``message`` naming the URL and the database or bucket,
``status``, ``retryable``) mapped by `ingest.influx_errors`: ``retryable=False`` means exactly
"bad data" (split the batch) and ``True`` "retry later" (network, 5xx, 429, and configuration
problems such as 401/403/404, while the data waits unacknowledged in the broker).
`ping()` checks that the server answers (raising the same `SinkError`), for readiness.

Raw lines: ``write_lines(lines, *, label)`` (the `LineWriter` capability) makes ONE attempt to
write points that are not readings (the alerts' events, measurement ``alerts``) into the same
database and retention policy (v1) or bucket (v2), with the same credentials: ``lines`` are
line protocol, one point each with a nanosecond timestamp, without line breaks; ``label`` names
them in error messages. It returns when the database answered 2xx; errors are the `SinkError`
of `write` (``retryable=False``: bad data, including a line that is empty or holds a line
break, refused before any request). No lines, no request. Unlike `write`, it may run while a
`write` is in flight (the alerts flush on their own schedule): a sink keeps no state between
requests but its HTTP session, which takes concurrent requests.

Tiers: `write_tier` makes one attempt to write a `processors.domain.derived.Tier` (encoded by
`TierEncoder`) into the retention policy (v1, same database) or bucket (v2) that
`ingest.schema.tier_target` names (``tier_1h`` / ``<bucket>_1h``). Its errors map as above,
except that a missing retention policy or bucket is ``retryable=False`` (a setup step was
skipped; the caller skips the tier rather than hold back the readings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from devices.series import SeriesTable
from ingest.influx_errors import BAD_DATA, http_error, retry_after_s, transport_error
from ingest.influx_v1 import InfluxV1Sink
from ingest.influx_v2 import InfluxV2Sink
from ingest.schema import tier_setup, tier_target
from ingest.settings import InfluxSettings

InfluxSink = InfluxV1Sink | InfluxV2Sink


class LineWriter(Protocol):
    """What writes raw line protocol: both sinks (see the module docstring)."""

    async def write_lines(self, lines: Sequence[str], *, label: str = ...) -> None: ...


def make_sink(settings: InfluxSettings, table: SeriesTable) -> InfluxSink:
    """The sink for ``settings.api`` (``v1`` or ``v2``); no I/O until ``async with``."""
    return InfluxV2Sink(settings, table) if settings.api == "v2" else InfluxV1Sink(settings, table)


__all__ = ["BAD_DATA", "InfluxSink", "InfluxV1Sink", "InfluxV2Sink", "LineWriter", "http_error",
           "make_sink", "retry_after_s", "tier_setup", "tier_target", "transport_error"]
