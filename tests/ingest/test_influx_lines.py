"""`write_lines`: raw line protocol through the sinks (the alerts' events), one attempt, into the
sink's own database (1.x, for real) or bucket (the v2 API, into VictoriaMetrics), with the
errors of `write`."""

from __future__ import annotations

import time

import pytest
from aiohttp import web

from core.settings import Secret
from ingest.errors import SinkError
from ingest.influx_sink import LineWriter, make_sink
from ingest.settings import InfluxSettings
from pantau.devstack import InfluxDB1, VictoriaMetrics
from tests.ingest.test_influx_sink import Script, scripted, table_for, v1_settings

__all__ = ["scripted"]  # the fixture, shared with test_influx_sink
Scripted = tuple[str, list[Script], list[web.Request]]


async def test_v1_lines_land_in_the_sinks_database(influx: InfluxDB1, influx_db: str) -> None:
    now = time.time_ns()
    lines = [f'alerts,alertname=FloodStage,device=wl-1 state="firing",value=3.0 {now}',
             f'alerts,alertname=Watchdog state="firing",message="hidup \\"ok\\"" {now + 1}']
    async with make_sink(v1_settings(influx, influx_db), table_for("l1")) as sink:
        writer: LineWriter = sink
        await writer.write_lines(lines, label="alert events")
        await writer.write_lines([])  # nothing: no request
    rows = influx.rows("SELECT * FROM alerts ORDER BY time", db=influx_db)
    assert [(r["alertname"], r["state"], r["value"], r["message"]) for r in rows] == [
        ("FloodStage", "firing", 3.0, None), ("Watchdog", "firing", None, 'hidup "ok"')]


async def test_v2_lines_land_in_the_sinks_bucket(victoria: VictoriaMetrics) -> None:
    ts = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000  # VictoriaMetrics keeps ms
    device = f"wl-lines-{time.time_ns()}"
    settings = InfluxSettings(api="v2", url=victoria.url, org="city", bucket="pantau",
                              token=Secret("unused"))
    async with make_sink(settings, table_for("l2")) as sink:
        await sink.write_lines([f"alerts,device={device} value=2.5 {ts}"], label="alert events")
    [series] = victoria.export(f'{{device="{device}"}}')
    assert series["metric"]["__name__"] == "alerts_value"
    assert (series["timestamps"], series["values"]) == ([ts // 1_000_000], [2.5])


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_errors_are_those_of_write_and_name_the_label(api: str, scripted: Scripted
                                                            ) -> None:
    url, answers, seen = scripted
    answers += [lambda: web.Response(status=503, text="overloaded"),
                lambda: web.Response(status=400, text='{"error":"unable to parse"}'),
                lambda: web.Response(status=204)]
    settings = InfluxSettings(api=api, url=url, token=Secret("t"), bucket="bkt")
    async with make_sink(settings, table_for("le")) as sink:
        errors = []
        for _ in range(2):
            with pytest.raises(SinkError) as info:
                await sink.write_lines(["alerts value=1 1"], label="alert events")
            errors.append(info.value)
        await sink.write_lines(["alerts value=1 1", "alerts value=2 2"])
        for bad in (["alerts value=1 1\nalerts value=2 2"], ["alerts value=1 1\r"], [" "]):
            with pytest.raises(SinkError, match="empty or holds a line break") as info:
                await sink.write_lines(bad)
            assert not info.value.retryable
    assert [(e.status, e.retryable) for e in errors] == [(503, True), (400, False)]
    assert all("(alert events)" in str(e) for e in errors) and "unable to parse" in str(errors[1])
    assert len(seen) == 3  # the refused lines never left
    assert seen[-1].query["precision"] == "ns"
