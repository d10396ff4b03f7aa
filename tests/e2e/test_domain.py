"""Issue 3 end to end: derived fields, quality flags and tiers through real Mosquitto and InfluxDB,
queried back with InfluxQL; flood stages survive a clean restart and a kill -9.

The gauge is wl-brantas-kanigoro (Waspada 430, Siaga 580, Awas 730 cm; hysteresis 25), with
the default minimum duration of 300 s: one reading a minute, a stage is entered on the sixth
reading at or above its threshold.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from devices.registry import default_registry_path
from pantau.devstack import InfluxDB1
from tests.e2e.conftest import (
    EnvFactory,
    PantauProcess,
    reached,
    run_pantau,
    scrape,
    wait_for,
)

GAUGE = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
AQ = "pantau/kanigoro/aq-kanigoro/telemetry"
WEATHER_DEV = "ws-kanigoro"
S = 1_000_000_000
T0 = (int(time.time()) - 2 * 86400) // 3600 * 3600   # an hour boundary two days ago
# 200 cm, then six minutes at 440 (Waspada on the sixth), then six at 590 (Siaga on the sixth)
WALK = [200.0] + [440.0] * 6 + [590.0] * 6
STAGES = [0] * 6 + [1] * 6 + [2]
FLAG_SPIKE = 512
ACKED = "pantau_messages_acked_total"  # counted once a batch is stored


def readings(levels: list[float], start_min: int) -> str:
    return json.dumps([{"ts": T0 + 60 * (start_min + k), "values": {"level_cm": v}}
                       for k, v in enumerate(levels)])


def column(influx: InfluxDB1, db: str, q: str, field: str) -> dict[int, Any]:
    return {(r["time"] - T0 * S) // (60 * S): r[field] for r in influx.rows(q, db=db)
            if r.get(field) is not None}


def stages(influx: InfluxDB1, db: str) -> dict[int, Any]:
    return column(influx, db, "SELECT flood_stage FROM river_gauge WHERE "
                  "device='wl-brantas-kanigoro'", "flood_stage")


def fast_gauges(tmp_path: Path) -> str:
    """The shipped registry with river gauges reporting every 30 s, so that they are in the
    1-minute tier too (a tier covers the devices reporting more often than its resolution);
    the walk still comes a reading a minute, below the gap rule's 2 intervals."""
    text = default_registry_path().read_text()
    old = "  river_gauge:\n    interval_s: 60\n"
    assert old in text
    path = tmp_path / "registry.yaml"
    path.write_text(text.replace(old, "  river_gauge:\n    interval_s: 30\n"))
    return str(path)


def create_tiers(influx: InfluxDB1, db: str) -> None:
    for rp in ("tier_1m", "tier_1h"):
        influx.query(f'CREATE RETENTION POLICY "{rp}" ON "{db}" DURATION INF REPLICATION 1',
                     db="", user="admin")


async def test_derived_fields_quality_and_tiers_are_queryable(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any,
        tmp_path: Path) -> None:
    create_tiers(influx, influx_db)
    env = pantau_env(influx_db, PANTAU_REGISTRY=fast_gauges(tmp_path),
                     PANTAU_PROCESSORS_ANOMALY_WARMUP="3",
                     PANTAU_PROCESSORS_SNAPSHOT_INTERVAL_S="0",  # tiers written every batch
                     PANTAU_INGEST_PROCESSORS="calibration,range_check,dedupe,quality,flood,"
                     "aqi,anomaly,tiers,windows")
    gauge, aq = mqtt_client("wl-brantas-kanigoro"), mqtt_client("aq-kanigoro")
    async with run_pantau(env):
        gauge.publish(GAUGE, readings(WALK, 0))
        # a day of PM every 300 s, ending at T0: ISPU needs 18 complete hours of 24
        aq.publish(AQ, json.dumps([{"ts": T0 - 86400 + 300 * (k + 1),
                                    "values": {"pm25": 35.5, "pm10": 80}} for k in range(288)]))
        await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK)
                       and len(influx.rows('SELECT * FROM "tier_1h".river_gauge',
                                           db=influx_db)) == 1, what="derived rows and tiers")
        await wait_for(lambda: reached(env, ACKED, 2), what="both messages acknowledged")
        m = await scrape(env)
    db = influx_db
    assert stages(influx, db) == dict(enumerate(STAGES))
    [last] = influx.rows("SELECT level_cm, level_rise_cm_h, level_cm_zscore, level_cm_mean_5m, "
                         "level_cm_max_1h FROM river_gauge ORDER BY time DESC LIMIT 1", db=db)
    assert last["level_cm"] == 590.0
    assert last["level_rise_cm_h"] > 0 and last["level_cm_zscore"] is not None
    assert last["level_cm_mean_5m"] == 590.0 and last["level_cm_max_1h"] == 590.0
    # the two jumps are faster than a river rises (2 cm/s): flagged, stored as level_cm_q
    q = column(influx, db, "SELECT level_cm_q FROM river_gauge", "level_cm_q")
    assert q == {1: FLAG_SPIKE, 7: FLAG_SPIKE}
    [station] = influx.rows("SELECT ispu, ispu_critical, ispu_category, pm25_ispu, pm10_ispu "
                            "FROM air_quality ORDER BY time DESC LIMIT 1", db=db)
    # PM2.5 35.5: 50 + 50 * (35.5 - 15.5) / (55.4 - 15.5) = 75.06; PM10 80: 50 + 50 * 30 / 100
    assert (station["ispu"], station["pm25_ispu"], station["pm10_ispu"]) == (75.0, 75.0, 65.0)
    assert (station["ispu_critical"], station["ispu_category"]) == (0.0, 1.0)  # PM2.5, Sedang
    # every PM2.5 reading has a sub-index or is counted incomplete (the first ~18 hours)
    [n_ispu] = influx.rows("SELECT count(pm25_ispu) FROM air_quality", db=db)
    incomplete = m['pantau_aqi_incomplete_total{average="subindex",pollutant="pm25"}']
    assert 0 < n_ispu["count"] < 288 and n_ispu["count"] + incomplete == 288
    aq_hours = influx.rows('SELECT pm25_count FROM "tier_1h".air_quality', db=db)
    assert len(aq_hours) == 25 and sum(r["pm25_count"] for r in aq_hours) == 288
    minutes = influx.rows('SELECT level_cm_mean, level_cm_count FROM "tier_1m".river_gauge',
                          db=db)
    assert [(r["level_cm_mean"], r["level_cm_count"]) for r in minutes] == [
        (v, 1.0) for v in WALK]
    [hour] = influx.rows('SELECT * FROM "tier_1h".river_gauge', db=db)
    assert hour["time"] == T0 * S and hour["device"] == "wl-brantas-kanigoro"
    assert (hour["level_cm_count"], hour["level_cm_min"], hour["level_cm_max"]) == (13, 200, 590)
    assert hour["level_cm_mean"] == pytest.approx(sum(WALK) / len(WALK))
    raw = influx.rows("SELECT count(level_cm) FROM river_gauge", db=db)
    assert raw[0]["count"] == len(WALK)
    # derived rows are not readings: conservation counts the 13 + 2 * 288 readings only
    assert m["pantau_readings_written_total"] == len(WALK) + 2 * 288
    # level: 1 hour; pm25 and pm10: 25 hours each, every bucket written once
    assert m['pantau_tier_points_written_total{resolution="3600"}'] == 51
    assert m['pantau_quality_flags_total{kind="spike"}'] == 2


async def test_missing_tier_policies_do_not_hold_back_the_readings(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any) -> None:
    gauge = mqtt_client("wl-brantas-kanigoro")
    env = pantau_env(influx_db, PANTAU_PROCESSORS_SNAPSHOT_INTERVAL_S="0")
    async with run_pantau(env):
        gauge.publish(GAUGE, readings(WALK[:3], 0))
        await wait_for(lambda: len(stages(influx, influx_db)) == 3, what="3 stages")
        # the counters move once the batch is acknowledged
        await wait_for(lambda: reached(env, ACKED, 1), what="the message acknowledged")
        m = await scrape(env)
    # the 60 s gauge is in the 1-hour tier only, whose policy is missing
    assert m['pantau_tier_writes_skipped_total{resolution="3600"}'] == 1
    assert 'pantau_tier_writes_skipped_total{resolution="60"}' not in m
    assert m["pantau_readings_written_total"] == 3


async def test_a_clean_restart_neither_resets_nor_refires_a_flood_stage(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any) -> None:
    env = pantau_env(influx_db)
    gauge = mqtt_client("wl-brantas-kanigoro")
    async with run_pantau(env):
        gauge.publish(GAUGE, readings(WALK, 0))
        await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK), what="the walk")
    assert (Path(env["PANTAU_STATE_DIR"]) / "processors.npz").exists()
    async with run_pantau(env):
        # Above Siaga, below Awas; a fresh state would need 5 minutes to enter any stage.
        gauge.publish(GAUGE, readings([600.0, 610.0], len(WALK)))
        await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK) + 2, what="2 more")
        # ...and back below Siaga minus hysteresis: the stage steps down, it does not restart.
        gauge.publish(GAUGE, readings([540.0], len(WALK) + 2))
        await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK) + 3, what="1 more")
    got = stages(influx, influx_db)
    assert [got[k] for k in range(len(WALK), len(WALK) + 3)] == [2, 2, 1]


@pytest.mark.slow
async def test_kill_9_neither_resets_nor_refires_a_flood_stage(
        pantau_env: EnvFactory, pantau_process: Any, influx: InfluxDB1, influx_db: str,
        mqtt_client: Any) -> None:
    from tests.e2e.test_faults import _ready
    env = pantau_env(influx_db, PANTAU_PROCESSORS_SNAPSHOT_INTERVAL_S="0")
    gauge = mqtt_client("wl-brantas-kanigoro")
    p: PantauProcess = pantau_process(env)
    p.start()
    await _ready(p)
    gauge.publish(GAUGE, readings(WALK, 0))
    await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK), what="the walk")
    p.kill9()
    p.start()
    await _ready(p)
    gauge.publish(GAUGE, readings([600.0], len(WALK)))
    await wait_for(lambda: len(stages(influx, influx_db)) == len(WALK) + 1, what="1 more")
    assert stages(influx, influx_db)[len(WALK)] == 2
    assert p.stop() == 0


async def test_a_lost_snapshot_is_rebuilt_from_the_stored_readings(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    # The walk to Siaga an hour ago, then three minutes in the band under it (555-580: Siaga
    # holds by its hysteresis). The snapshot is lost; the restarted Pantau replays the stored
    # readings of the last hours from InfluxDB (as the read-only user) before ingesting.
    t0 = (int(time.time()) - 3600) // 60 * 60
    walk = [*WALK, 570.0, 565.0, 575.0]

    def recent(levels: list[float], start_min: int) -> str:
        return json.dumps([{"ts": t0 + 60 * (start_min + k), "values": {"level_cm": v}}
                           for k, v in enumerate(levels)])

    def rows() -> list[dict[str, Any]]:
        return influx.rows(f"SELECT flood_stage, level_rise_cm_h, level_cm_zscore FROM "
                           f"river_gauge WHERE time >= {t0 * S}", db=influx_db)

    env = pantau_env(influx_db, PANTAU_PROCESSORS_ANOMALY_WARMUP="3")
    gauge = mqtt_client("wl-brantas-kanigoro")
    async with run_pantau(env):
        gauge.publish(GAUGE, recent(walk, 0))
        await wait_for(lambda: len(rows()) == len(walk), what="the walk")
    snapshot = Path(env["PANTAU_STATE_DIR"]) / "processors.npz"
    snapshot.unlink()
    caplog.set_level(logging.INFO, logger="pantau")
    async with run_pantau(env):
        gauge.publish(GAUGE, recent([572.0], len(walk)))
        await wait_for(lambda: len(rows()) == len(walk) + 1, what="1 more")
    after = rows()[-1]
    # a fresh state would say Normal (5 minutes above a threshold first) and have no rise
    # rate or z-score yet (3 readings in the window; 3 for the z-score here)
    assert after["flood_stage"] == 2
    assert after["level_rise_cm_h"] is not None and after["level_cm_zscore"] is not None
    assert f"warm-up: river_gauge: {len(walk)} stored readings" in caplog.text


@pytest.mark.slow
async def test_kill_9_after_a_snapshot_catches_up_from_the_stored_readings(
        pantau_env: EnvFactory, pantau_process: Any, influx: InfluxDB1, influx_db: str,
        mqtt_client: Any) -> None:
    # Snapshots at most every 3 s. Eight readings, a snapshot, five more readings written
    # and acknowledged, then kill -9 before the next snapshot: the restarted Pantau restores
    # the snapshot and replays the stored readings it lacks, so the 1-hour tier counts all.
    from tests.e2e.test_faults import _ready
    t0 = (int(time.time()) - 13 * 60) // 60 * 60
    create_tiers(influx, influx_db)
    env = pantau_env(influx_db, PANTAU_PROCESSORS_SNAPSHOT_INTERVAL_S="3")

    def walk(levels: list[float], start_min: int) -> str:
        return json.dumps([{"ts": t0 + 60 * (start_min + k), "values": {"level_cm": v}}
                           for k, v in enumerate(levels)])

    def stored() -> int:
        return len(stages(influx, influx_db)) and len(influx.rows(
            f"SELECT level_cm FROM river_gauge WHERE time >= {t0 * S}", db=influx_db))

    snapshot = Path(env["PANTAU_STATE_DIR"]) / "processors.npz"
    gauge = mqtt_client("wl-brantas-kanigoro")
    p: PantauProcess = pantau_process(env)
    p.start()
    await _ready(p)
    await asyncio.sleep(3.1)  # the next checkpoint is due
    gauge.publish(GAUGE, walk(WALK[:8], 0))
    await wait_for(lambda: stored() == 8 and snapshot.exists(), what="8 readings, snapshot")
    saved = snapshot.stat().st_mtime_ns
    gauge.publish(GAUGE, walk(WALK[8:], 8))
    await wait_for(lambda: stored() == len(WALK), what="the rest of the walk")
    # acknowledged: the broker will not deliver them again
    await wait_for(lambda: reached(env, ACKED, 2), what="the second message acknowledged")
    p.kill9()
    assert snapshot.stat().st_mtime_ns == saved, "a snapshot came after the last 5 readings"
    p.start()
    await _ready(p)
    gauge.publish(GAUGE, walk([600.0], len(WALK)))
    await wait_for(lambda: stored() == len(WALK) + 1, what="1 more")
    assert p.stop() == 0  # a clean stop writes the open tier buckets
    hours = influx.rows('SELECT level_cm_count FROM "tier_1h".river_gauge', db=influx_db)
    assert sum(r["level_cm_count"] for r in hours) == len(WALK) + 1
    assert "warm-up (catching up after the snapshot)" in p.log.read_text()
