"""Alert events to InfluxDB: one point per transition (measurement
`ingest.schema.ALERTS_MEASUREMENT`, tags ``alertname``, ``severity``, ``device``, ``site``,
``kind``, fields ``state`` (string), ``value`` (float, when there is one) and ``message``),
so Grafana draws annotations and state timelines beside the data.

`AlertEvents` is a `alerts.lifecycle.Book` listener that queues the lines (bounded: the oldest
are dropped and counted when the database stays away) and `flush` writes them in one request
through a `ingest.influx_sink.LineWriter` (the InfluxDB sink Pantau writes its readings with:
the same URL, credentials and database or bucket; one attempt, `ingest.errors.SinkError`).
"""

from __future__ import annotations

import logging
import math
from collections import deque

from alerts.lifecycle import Alert
from alerts.store import Event
from core.metrics import Metrics
from ingest.errors import SinkError
from ingest.influx_sink import LineWriter
from ingest.lineproto import escape_key, escape_measurement
from ingest.schema import ALERTS_FIELDS, ALERTS_MEASUREMENT, ALERTS_TAGS

log = logging.getLogger("pantau.alerts")
HELP = {"pantau_alert_events_total": ("counter", "Alert transitions written to InfluxDB "
                                      "(measurement alerts), by result (written; dropped: the "
                                      "queue was full; refused: InfluxDB called them bad data)."
                                      )}


def _string(text: str) -> str:
    """A string field: quotes and backslashes escaped, line breaks made spaces (a break would
    end the point)."""
    for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\r\n", " "), ("\n", " "), ("\r", " ")):
        text = text.replace(old, new)
    return f'"{text}"'


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


class AlertEvents:
    def __init__(self, writer: LineWriter, metrics: Metrics, *, max_queued: int = 100_000
                 ) -> None:
        self._writer, self._m = writer, metrics
        metrics.describe(HELP)
        self._queue: deque[str] = deque(maxlen=max_queued)

    def __call__(self, alert: Alert, event: Event) -> None:
        if len(self._queue) == self._queue.maxlen:
            self._m.counter("pantau_alert_events_total", result="dropped").inc()
        self._queue.append(line(event))

    async def flush(self) -> None:
        """Write what is queued (one attempt). On a retryable failure it stays queued for the
        next flush; lines the database refuses as bad data are dropped, counted and logged
        (kept, they would block every later event)."""
        if not self._queue:
            return
        lines = list(self._queue)
        self._queue.clear()
        try:
            await self._writer.write_lines(lines, label="alert events")
        except SinkError as e:
            if e.retryable:
                log.warning("alert events not written to InfluxDB yet: %s", e)
                over = len(lines) + len(self._queue) - (self._queue.maxlen or 0)
                if over > 0:  # extendleft drops the newest beyond maxlen
                    self._m.counter("pantau_alert_events_total", result="dropped").inc(over)
                self._queue.extendleft(reversed(lines))  # before what came meanwhile
                return
            log.error("%d alert events refused by InfluxDB and dropped: %s", len(lines), e)
            self._m.counter("pantau_alert_events_total", result="refused").inc(len(lines))
            return
        self._m.counter("pantau_alert_events_total", result="written").inc(len(lines))
