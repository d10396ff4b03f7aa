"""Alert events into the real InfluxDB through the ingest sink (measurement `alerts`), and
every alert to every Alertmanager replica, a replica that was down included."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from alerts.events import AlertEvents, line
from alerts.store import Event
from core.metrics import Metrics
from core.settings import Secret
from ingest.errors import SinkError
from ingest.influx_sink import make_sink
from ingest.schema import ALERTS_MEASUREMENT
from ingest.settings import InfluxSettings
from pantau.devstack import InfluxDB1
from tests.alerts.helpers import chain
from tests.alerts.receivers import until
from tests.alerts.stack import Spawn, alert_stack, firing_groups


async def test_transitions_become_points_of_the_alerts_measurement(
        influx: InfluxDB1, influx_db: str) -> None:
    settings = InfluxSettings(url=influx.url, database=influx_db,
                              username=influx.writer.username,
                              password=Secret(influx.writer.password))
    now = time.time_ns()
    events = [Event(now, "a1", "FloodStage", "critical", "wl-1", "kanigoro", "river_gauge",
                    "firing", 3.0, 'Sungai "brantas", Awas'),
              Event(now + 1, "w", "Watchdog", "info", "", "", "", "firing", None, "hidup")]
    async with make_sink(settings, chain().table) as sink:
        writer = AlertEvents(sink, Metrics())
        for e in events:
            writer(None, e)  # type: ignore[arg-type]  # the listener ignores the alert
        await writer.flush()
    rows = influx.rows(f'SELECT * FROM "{ALERTS_MEASUREMENT}" ORDER BY time', db=influx_db)
    assert [(r["alertname"], r["state"], r["value"], r["device"]) for r in rows] == [
        ("FloodStage", "firing", 3.0, "wl-1"), ("Watchdog", "firing", None, None)]
    assert rows[0]["message"] == 'Sungai "brantas", Awas' and rows[0]["kind"] == "river_gauge"


class Flaky:
    """A `LineWriter` that fails as told, then keeps what it was given."""

    def __init__(self, *errors: SinkError) -> None:
        self.errors, self.got = list(errors), list[list[str]]()

    async def write_lines(self, lines: Sequence[str], *, label: str = "lines") -> None:
        assert label == "alert events"
        if self.errors:
            raise self.errors.pop(0)
        self.got.append(list(lines))


def event(n: int, message: str = "m") -> Event:
    return Event(n, "a", "FloodStage", "high", "wl-1", "kanigoro", "river_gauge", "firing",
                 float(n), message)


async def test_a_retryable_failure_keeps_the_events_in_order_bad_data_drops_them() -> None:
    metrics = Metrics()
    sink = Flaky(SinkError("down", retryable=True), SinkError("refused", retryable=False))
    writer = AlertEvents(sink, metrics)
    writer(None, event(1, "line\r\nbreak"))  # type: ignore[arg-type]
    await writer.flush()  # down: kept
    writer(None, event(2))  # type: ignore[arg-type]
    await writer.flush()  # refused as bad data: both dropped, counted
    writer(None, event(3))  # type: ignore[arg-type]
    await writer.flush()
    assert [[ln.split()[-1] for ln in lines] for lines in sink.got] == [["3"]]
    text = metrics.render()
    assert 'pantau_alert_events_total{result="refused"} 2' in text
    assert 'pantau_alert_events_total{result="written"} 1' in text
    assert 'message="line break"' in line(event(1, "line\r\nbreak"))  # one point, one line


async def test_every_alert_reaches_every_replica(tmp_path: Path, spawn: Spawn) -> None:
    async with alert_stack(tmp_path, spawn, replicas=2) as st:
        second = st.ams[1]
        second.stop()
        st.feed({"wl-putih-gandusari": 170.0})
        await until(lambda: ("Waspada", 1) in firing_groups(st.rx.got.by("bpbd")),
                    what="the first replica's notification")
        second.start()  # down when the alert fired: it gets it once back
        await until(lambda: any(a["labels"].get("stage") == "Waspada"
                                for a in second.alerts()), what="the second replica's alert")
