"""InfluxDB sinks: error mapping, and real writes to InfluxDB 1.x and (v2 API) VictoriaMetrics."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from core.batch import TelemetryBatch
from core.reasons import Reason
from core.settings import Secret
from devices.registry import Device, Metric, Registry, Site
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.influx_sink import InfluxV1Sink, InfluxV2Sink, http_error, make_sink, retry_after_s
from ingest.settings import InfluxSettings
from pantau.devstack import InfluxDB1, VictoriaMetrics
from pantau.devstack._process import free_port

_ids = itertools.count()


def table_for(prefix: str) -> SeriesTable:
    """A gauge and a rain gauge with unique ids, so tests sharing a server do not mix."""
    n = next(_ids)
    return SeriesTable.from_registry(Registry(sites=(Site("kanigoro", "K", 0, 0),), devices=(
        Device(f"{prefix}-wl-{n}", "river_gauge", "kanigoro", 0, 0, 60.0,
               (Metric("level_cm", "cm"), Metric("battery_v", "V"))),
        Device(f"{prefix}-rg-{n}", "rain_gauge", "kanigoro", 0, 0, 300.0,
               (Metric("rain_mm", "mm"),)))))


def v1_settings(influx: InfluxDB1, db: str, **kw: object) -> InfluxSettings:
    base: dict[str, object] = {"url": influx.url, "database": db,
                               "username": influx.writer.username,
                               "password": Secret(influx.writer.password), "timeout_s": 5.0}
    return InfluxSettings(**{**base, **kw})  # type: ignore[arg-type]


def sample(now_ms: int, *, digits17: float = 0.30000000000000004
           ) -> tuple[TelemetryBatch, list[tuple[int, int, float]]]:
    t = now_ms * 1_000_000
    rows = [(t, 0, 123.4), (t, 1, 3.9), (t + 60_000_000_000, 0, digits17),
            (t + 60_000_000_000, 1, -0.5), (t, 2, 12.25), (t + 1_000_000, 2, 1e-05)]
    b = TelemetryBatch.from_arrays(*zip(*rows, strict=True))
    return b, rows


# -- mapping --------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "retryable"), [
    pytest.param(400, False, id="400-bad-data"), pytest.param(413, False, id="413-too-large"),
    pytest.param(422, False, id="422-unprocessable"), pytest.param(401, True, id="401-auth"),
    pytest.param(403, True, id="403-forbidden"), pytest.param(404, True, id="404-missing-db"),
    pytest.param(429, True, id="429-slow-down"), pytest.param(500, True, id="500"),
    pytest.param(503, True, id="503")])
def test_status_mapping(status: int, retryable: bool) -> None:
    e = http_error(status, "detail", {"Retry-After": "7"}, "InfluxDB x database 'db'", "fix it")
    assert (e.retryable, e.status) == (retryable, status)
    assert "database 'db'" in str(e)
    assert e.retry_after == (None if status in (400, 413, 422) else 7.0)
    assert ("fix it" in str(e)) == (status in (401, 403, 404))


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param("3", 3.0, id="seconds"), pytest.param("0.5", 0.5, id="fraction"),
    pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", None, id="http-date-ignored"),
    pytest.param(None, None, id="absent")])
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after_s({} if value is None else {"Retry-After": value}) == expected


def test_make_sink_chooses_by_api() -> None:
    t = table_for("mk")
    assert isinstance(make_sink(InfluxSettings(api="v1"), t), InfluxV1Sink)
    assert isinstance(make_sink(InfluxSettings(api="v2"), t), InfluxV2Sink)


# -- a scripted server for answers the real ones do not give on demand ------------------------
Script = Callable[[], web.Response | Awaitable[web.Response]]


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, list[Script], list[web.Request]]]:
    answers: list[Script] = []
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request)
        answer = answers.pop(0)()
        return await answer if inspect.isawaitable(answer) else answer

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", answers, seen
    await runner.cleanup()


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_429_retry_after_and_503_are_retryable(
        api: str, scripted: tuple[str, list[Script], list[web.Request]]) -> None:
    url, answers, seen = scripted
    answers += [lambda: web.Response(status=429, headers={"Retry-After": "2"}, text="slow down"),
                lambda: web.Response(status=503, text="overloaded"),
                lambda: web.Response(status=400, text='{"error":"partial write"}'),
                lambda: web.Response(status=204)]
    b, _ = sample(1_700_000_000_000)
    settings = InfluxSettings(api=api, url=url, token=Secret("t"), bucket="bkt")
    async with make_sink(settings, table_for("s")) as sink:
        errors = []
        for _ in range(3):
            with pytest.raises(SinkError) as info:
                await sink.write(b)
            errors.append(info.value)
        await sink.write(b)
    assert [(e.status, e.retryable, e.retry_after) for e in errors] == [
        (429, True, 2.0), (503, True, None), (400, False, None)]
    assert "partial write" in str(errors[2])
    assert "bkt" in str(errors[0]) if api == "v2" else "'pantau'" in str(errors[0])
    assert seen[0].query["precision"] == "ns"


async def test_a_batch_without_ok_rows_makes_no_request(
        scripted: tuple[str, list[Script], list[web.Request]]) -> None:
    url, _, seen = scripted
    b, _ = sample(1_700_000_000_000)
    async with InfluxV1Sink(InfluxSettings(url=url), table_for("e")) as sink:
        await sink.write(b.with_status(np.ones(len(b), bool), Reason.OUT_OF_RANGE))
        await sink.write(TelemetryBatch.empty())
    assert seen == []


# -- InfluxDB 1.x, for real ------------------------------------------------------------------
async def test_v1_write_reads_back_exactly(influx: InfluxDB1, influx_db: str) -> None:
    table = table_for("v1")
    b, rows = sample(1_700_000_000_000)
    async with InfluxV1Sink(v1_settings(influx, influx_db), table) as sink:
        await sink.ping()
        await sink.write(b)
    wl, rg = (d.id for d in table.devices)
    got = influx.rows(f"SELECT * FROM river_gauge WHERE device='{wl}'", db=influx_db)
    t = rows[0][0]
    assert got == [
        {"time": t, "battery_v": 3.9, "device": wl, "level_cm": 123.4, "site": "kanigoro"},
        {"time": t + 60_000_000_000, "battery_v": -0.5, "device": wl,
         "level_cm": 0.30000000000000004, "site": "kanigoro"}]
    got = influx.rows(f"SELECT * FROM rain_gauge WHERE device='{rg}'", db=influx_db)
    assert [(r["time"], r["rain_mm"], r["site"]) for r in got] == [
        (t, 12.25, "kanigoro"), (t + 1_000_000, 1e-05, "kanigoro")]


async def test_v1_type_conflict_is_bad_data(influx: InfluxDB1, influx_db: str) -> None:
    table = table_for("conflict")
    wl = table.devices[0].id
    b, _ = sample(1_700_000_000_000)
    # the same shard (InfluxDB 1.x checks field types per shard): one second earlier
    influx.write(f'river_gauge,device={wl},site=kanigoro level_cm="high" '
                 f'{int(b.ts_ns[0]) - 1_000_000_000}', db=influx_db)
    async with InfluxV1Sink(v1_settings(influx, influx_db), table) as sink:
        with pytest.raises(SinkError) as info:
            await sink.write(b)
    assert (info.value.status, info.value.retryable) == (400, False)
    assert "field type conflict" in str(info.value)


@pytest.mark.parametrize(("change", "expected_status"), [
    pytest.param({"password": Secret("wrong")}, 401, id="wrong-password"),
    pytest.param({"database": "no_such_db"}, 404, id="missing-database"),
    pytest.param({"database": "not_granted"}, 403, id="no-write-grant")])
async def test_v1_configuration_errors_are_retryable(
        influx: InfluxDB1, influx_db: str, change: dict[str, object],
        expected_status: int) -> None:
    if change.get("database") == "not_granted":
        change = {"database": f"{influx_db}_nogrant"}
        influx.query(f'CREATE DATABASE "{change["database"]}"', db="", user="admin")
    settings = v1_settings(influx, influx_db, **change)
    b, _ = sample(1_700_000_000_000)
    async with InfluxV1Sink(settings, table_for("cfg")) as sink:
        with pytest.raises(SinkError) as info:
            await sink.write(b)
    if expected_status == 403:
        influx.drop_database(settings.database)
    e = info.value
    assert e.retryable, e
    assert e.status == expected_status, e
    assert f"database {settings.database!r}" in str(e)
    assert "unacknowledged" in str(e)


async def test_v1_stopped_server_is_retryable(
        spawn: Callable[[InfluxDB1], InfluxDB1], tmp_path: Path) -> None:
    server = spawn(InfluxDB1(tmp_path))
    b, _ = sample(1_700_000_000_000)
    async with InfluxV1Sink(v1_settings(server, server.database), table_for("stop")) as sink:
        await sink.write(b)
        server.stop()
        errors = []
        for call in (sink.write, sink.ping):
            with pytest.raises(SinkError) as info:
                await (call(b) if call == sink.write else sink.ping())
            errors.append(info.value)
    assert [(e.retryable, e.status) for e in errors] == [(True, None), (True, None)]
    assert all("unreachable" in str(e) for e in errors)


# -- the v2 API through influxdb-client, into VictoriaMetrics -----------------------------------
async def test_v2_write_lands_in_victoriametrics(victoria: VictoriaMetrics) -> None:
    table = table_for("v2")
    now_ms = time.time_ns() // 1_000_000 - 3_600_000      # VictoriaMetrics keeps ms...
    b, rows = sample(now_ms, digits17=0.123456789012)     # ...and about 15 digits of a value
    settings = InfluxSettings(api="v2", url=victoria.url, org="city", bucket="pantau",
                              token=Secret("unused"))
    async with make_sink(settings, table) as sink:
        await sink.ping()
        await sink.write(b)
    got = {}
    for d in table.devices:
        for s in victoria.export(f'{{device="{d.id}"}}'):
            labels = {k: v for k, v in s["metric"].items() if k != "db"}
            got[tuple(sorted(labels.items()))] = list(zip(s["timestamps"], s["values"],
                                                          strict=True))
    expected: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
    for t, s, v in rows:
        d = table.devices[int(table.device_index[s])]
        key = tuple(sorted({"__name__": f"{d.kind}_{table.metric[s]}", "device": d.id,
                            "site": d.site}.items()))
        expected.setdefault(key, []).append((t // 1_000_000, v))
    assert got == {k: sorted(v) for k, v in expected.items()}


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_unreachable_and_slow_servers_are_retryable(
        api: str, scripted: tuple[str, list[Script], list[web.Request]]) -> None:
    url, answers, _ = scripted
    b, _ = sample(1_700_000_000_000)
    nobody = f"http://127.0.0.1:{free_port()}"
    async with make_sink(InfluxSettings(api=api, url=nobody), table_for("u")) as sink:
        with pytest.raises(SinkError, match="unreachable") as info:
            await sink.write(b)
    assert (info.value.retryable, info.value.status) == (True, None)

    async def slow() -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(status=204)

    answers.append(slow)
    async with make_sink(InfluxSettings(api=api, url=url, timeout_s=0.2), table_for("t")) as sink:
        with pytest.raises(SinkError, match="timed out") as info:
            await sink.write(b)
    assert info.value.retryable
