"""Tier line protocol and writes (retention policies on 1.x, buckets on 2.x), and the
processors' state file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from core.settings import Secret
from devices.registry import Device, Metric, Registry, Site
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.influx_sink import InfluxV1Sink, make_sink, tier_setup, tier_target
from ingest.lineproto import TierEncoder
from ingest.settings import InfluxSettings
from ingest.snapshot import StateFile
from pantau.devstack import InfluxDB1, VictoriaMetrics, free_port
from processors.domain.derived import Tier

TABLE = SeriesTable.from_registry(Registry(sites=(Site("k", "K", 0, 0),), devices=(
    Device("wl-1", "river_gauge", "k", 0, 0, 60.0, (Metric("level_cm", "cm"),
                                                    Metric("battery_v", "V"))),)))
H = 3_600_000_000_000


def tier(resolution_s: int, t0: int) -> Tier:
    return Tier(resolution_s, np.array([t0, t0, t0 + H]), np.array([0, 1, 0], np.int32),
                np.array([1.5, 12.0, 3.0]), np.array([1.0, 12.0, 3.0]),
                np.array([2.0, 12.0, 3.0]), np.array([2, 1, 1]))


def test_tier_lines_carry_mean_min_max_count_per_metric() -> None:
    assert TierEncoder(TABLE).encode(tier(3600, 0)).decode().splitlines() == [
        "river_gauge,device=wl-1,site=k battery_v_count=1.0,battery_v_max=12.0,"
        "battery_v_mean=12.0,battery_v_min=12.0,level_cm_count=2.0,level_cm_max=2.0,"
        "level_cm_mean=1.5,level_cm_min=1.0 0",
        f"river_gauge,device=wl-1,site=k level_cm_count=1.0,level_cm_max=3.0,"
        f"level_cm_mean=3.0,level_cm_min=3.0 {H}"]


@pytest.mark.parametrize(("api", "seconds", "target"), [
    pytest.param("v1", 60, "tier_1m", id="v1-minute"),
    pytest.param("v1", 3600, "tier_1h", id="v1-hour"),
    pytest.param("v2", 3600, "pantau_1h", id="v2-hour")])
def test_tier_targets(api: str, seconds: int, target: str) -> None:
    assert tier_target(InfluxSettings(api=api), seconds) == target
    assert target in tier_setup(InfluxSettings(api=api), seconds)


def v1(influx: InfluxDB1, db: str) -> InfluxSettings:
    return InfluxSettings(url=influx.url, database=db, username=influx.writer.username,
                          password=Secret(influx.writer.password))


async def test_v1_tiers_go_to_their_retention_policy(influx: InfluxDB1, influx_db: str) -> None:
    influx.query(f'CREATE RETENTION POLICY "tier_1h" ON "{influx_db}" DURATION INF '
                 "REPLICATION 1", db="", user="admin")
    t0 = (time.time_ns() // H - 24) * H
    async with InfluxV1Sink(v1(influx, influx_db), TABLE) as sink:
        await sink.write_tier(tier(3600, t0))
        await sink.write_tier(Tier(3600, np.array([t0]), np.array([0], np.int32),  # upsert
                                   np.array([2.0]), np.array([1.0]), np.array([3.0]),
                                   np.array([3])))
    rows = influx.rows('SELECT level_cm_mean, level_cm_count FROM "tier_1h".river_gauge',
                       db=influx_db)
    assert [(r["time"], r["level_cm_mean"], r["level_cm_count"]) for r in rows] == [
        (t0, 2.0, 3.0), (t0 + H, 3.0, 1.0)]
    assert influx.rows("SELECT * FROM river_gauge", db=influx_db) == []  # not the raw data


async def test_v1_missing_retention_policy_is_not_retryable_and_says_how_to_create_it(
        influx: InfluxDB1, influx_db: str) -> None:
    async with InfluxV1Sink(v1(influx, influx_db), TABLE) as sink:
        with pytest.raises(SinkError, match='CREATE RETENTION POLICY "tier_1m"') as e:
            await sink.write_tier(tier(60, 0))
    assert not e.value.retryable


async def test_v2_tiers_go_to_their_bucket(victoria: VictoriaMetrics) -> None:
    settings = InfluxSettings(api="v2", url=victoria.url, org="city", bucket="pantau",
                              token=Secret("unused"))
    table = SeriesTable.from_registry(Registry(sites=(Site("k", "K", 0, 0),), devices=(
        Device(f"wl-v2-{time.time_ns()}", "river_gauge", "k", 0, 0, 60.0,
               (Metric("level_cm", "cm"), Metric("battery_v", "V"))),)))
    t0 = (time.time_ns() // H - 2) * H
    async with make_sink(settings, table) as sink:
        await sink.write_tier(tier(3600, t0))
    got = {s["metric"]["__name__"]: s["values"]
           for s in victoria.export(f'{{device="{table.devices[0].id}"}}')}
    assert got["river_gauge_level_cm_mean"] == [1.5, 3.0]


async def test_v2_missing_bucket_is_not_retryable_and_names_the_bucket() -> None:
    seen: list[str] = []

    async def write(request: web.Request) -> web.Response:
        seen.append(request.query["bucket"])
        return web.json_response({"code": "not found", "message": "bucket not found"},
                                 status=404)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        settings = InfluxSettings(api="v2", url=f"http://127.0.0.1:{port}", org="city",
                                  bucket="pantau", token=Secret("t"))
        async with make_sink(settings, TABLE) as sink:
            with pytest.raises(SinkError, match="influx bucket create") as e:
                await sink.write_tier(tier(60, 0))
    finally:
        await runner.cleanup()
    assert not e.value.retryable and seen == ["pantau_1m"]


def test_state_file_round_trip_is_atomic(tmp_path: Path) -> None:
    f = StateFile(tmp_path / "state" / "processors.npz")
    assert f.load() is None
    state = {"fingerprint": np.array("abc"), "flood/active": np.array([[True, False, False]]),
             "flood/run_start": np.array([[1, -(2**63), 3]], np.int64)}
    assert f.save(state) > 0
    got = f.load()
    assert got is not None and set(got) == set(state)
    for k, v in state.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    assert [p.name for p in f.path.parent.iterdir()] == ["processors.npz"]  # no temp left


def test_a_file_that_is_not_a_snapshot_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "processors.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a state snapshot"):
        StateFile(tmp_path / "processors.npz").load()


def test_coalesce_keeps_each_buckets_latest_aggregate() -> None:
    from ingest.writer import coalesce
    a = Tier(60, np.array([0, 0]), np.array([0, 1], np.int32), np.array([1.0, 5.0]),
             np.array([1.0, 5.0]), np.array([1.0, 5.0]), np.array([1, 1]))
    b = Tier(60, np.array([0, 60 * 10**9]), np.array([0, 0], np.int32), np.array([1.5, 7.0]),
             np.array([1.0, 7.0]), np.array([2.0, 7.0]), np.array([2, 1]))
    h = Tier(3600, np.array([0]), np.array([0], np.int32), np.array([1.0]), np.array([1.0]),
             np.array([1.0]), np.array([1]))
    empty = Tier(60, np.array([], np.int64), np.array([], np.int32), *[np.array([])] * 3,
                 np.array([], np.int64))
    minute, hour = coalesce([a, empty, h, b])
    assert (minute.resolution_s, hour) == (60, h)
    assert coalesce([empty, h, empty]) == [h]  # a tier with no rows (no series in it) vanishes
    assert list(zip(minute.series.tolist(), minute.ts_ns.tolist(), minute.mean.tolist(),
                    minute.count.tolist(), strict=True)) == [
        (0, 0, 1.5, 2), (0, 60 * 10**9, 7.0, 1), (1, 0, 5.0, 1)]
