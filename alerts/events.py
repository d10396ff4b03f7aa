"""Alert events to InfluxDB: one point per transition (measurement
`ingest.schema.ALERTS_MEASUREMENT`, tags ``alertname``, ``severity``, ``device``, ``site``,
``kind``, fields ``state`` (string), ``value`` (float, when there is one) and ``message``),
so Grafana draws annotations and state timelines beside the data.

`AlertEvents` is a `alerts.lifecycle.Book` listener that queues the lines (bounded: the oldest
are dropped and counted when the database stays away) and `flush` writes them in one request
through ``post`` (the InfluxDB sink's line writer: one attempt, `ingest.errors.SinkError`).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable

from alerts.lifecycle import Alert
from alerts.store import Event
from core.metrics import Metrics
from ingest.errors import SinkError
from ingest.influx_sink import InfluxSink, InfluxV2Sink
from ingest.lineproto import escape_key, escape_measurement
from ingest.schema import ALERTS_FIELDS, ALERTS_MEASUREMENT, ALERTS_TAGS

log = logging.getLogger("pantau.alerts")
HELP = {"pantau_alert_events_total": ("counter", "Alert transitions written to InfluxDB "
                                      "(measurement alerts), by result (written, dropped).")}
Post = Callable[[bytes], Awaitable[None]]


def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def line(event: Event) -> str:
    """The line protocol of one event (empty tags are left out, as InfluxDB requires)."""
    tags = {"alertname": event.alertname, "severity": event.severity, "device": event.device,
            "site": event.site, "kind": event.kind}
    tag_text = "".join(f",{k}={escape_key(tags[k])}" for k in sorted(ALERTS_TAGS) if tags[k])
    state, value, message = ALERTS_FIELDS
    fields = [f"{state}={_string(event.state)}"]
    if event.value is not None and math.isfinite(event.value):
        fields.append(f"{value}={float(event.value)!r}")
    fields.append(f"{message}={_string(event.message)}")
    return f"{escape_measurement(ALERTS_MEASUREMENT)}{tag_text} {','.join(fields)} {event.ts_ns}"


def via_sink(sink: InfluxSink) -> Post:
    """Post lines through the sink Pantau writes its readings with: the same URL, user or
    token, database or bucket and error mapping, one attempt per call. (The sinks have no
    public method for lines that are not readings; this uses their request path.)"""
    where = f"{sink._where} (alert events)"
    if isinstance(sink, InfluxV2Sink):
        bucket = sink.settings.bucket
        return lambda body: sink._post(body, bucket, where)
    params = sink._params
    return lambda body: sink._post(body, params, where)


class AlertEvents:
    def __init__(self, post: Post, metrics: Metrics, *, max_queued: int = 100_000) -> None:
        self._post, self._m = post, metrics
        metrics.describe(HELP)
        self._queue: deque[str] = deque(maxlen=max_queued)

    def __call__(self, alert: Alert, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._m.counter("pantau_alert_events_total", result="dropped").inc()
        self._queue.append(line(event))

    async def flush(self) -> None:
        """Write what is queued (one attempt); on failure it stays queued for the next."""
        if not self._queue:
            return
        lines = list(self._queue)
        try:
            await self._post(("\n".join(lines) + "\n").encode())
        except SinkError as e:
            log.warning("alert events not written to InfluxDB yet: %s", e)
            return
        for _ in lines:
            self._queue.popleft()
        self._m.counter("pantau_alert_events_total", result="written").inc(len(lines))
