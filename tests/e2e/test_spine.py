"""The spine end to end: a separate MQTT client publishes, Pantau stores, InfluxQL reads back.

Real Mosquitto and InfluxDB (session fixtures); values, tags and timestamps asserted exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pantau.devstack import ADMIN_USER, InfluxDB1
from tests.e2e.conftest import EnvFactory, api_headers, reached, run_pantau, scrape, wait_for

NOW_S = int(time.time()) - 60
NOW = NOW_S * 1_000_000_000
GAUGE = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
AQ = "pantau/kanigoro/aq-kanigoro/telemetry"


def count(influx: InfluxDB1, db: str, measurement: str) -> int:
    rows = influx.rows(f"SELECT count(*) FROM {measurement}", db=db)
    return max((v for r in rows for k, v in r.items() if k.startswith("count_")), default=0)


async def test_every_payload_format_is_stored_exactly(pantau_env: EnvFactory, influx: InfluxDB1,
                                                      influx_db: str, mqtt_client: Any) -> None:
    dev = mqtt_client("wl-brantas-kanigoro")
    aq = mqtt_client("aq-kanigoro")
    async with run_pantau(pantau_env(influx_db)):
        dev.publish(GAUGE, json.dumps({"ts": NOW_S, "values": {"level_cm": 123.4,
                                                                "battery_v": 12.9}}))
        rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%S.25Z", time.gmtime(NOW_S + 120))
        dev.publish(GAUGE, json.dumps([{"ts": NOW_S + 60, "values": {"level_cm": 124.0}},
                                       {"ts": rfc3339, "values": {"level_cm": 125.5}}]))
        dev.publish(GAUGE, json.dumps([{"bn": "urn:dev:wl-brantas-kanigoro:", "bt": NOW_S + 180,
                                        "n": "level_cm", "u": "cm", "v": 126.75},
                                       {"n": "battery_v", "u": "V", "v": 12.8}]))
        dev.publish(GAUGE, f"gauge level_cm=127.125,battery_v=13i {NOW + 240 * 10**9 + 7}")
        aq.publish(AQ, json.dumps({"ts": (NOW_S + 5) * 1000, "values": {"pm25": 35.5,
                                                                        "pm10": 80}}))
        await wait_for(lambda: count(influx, influx_db, "river_gauge") == 5
                       and count(influx, influx_db, "air_quality") == 1, what="6 points")
    rows = influx.rows("SELECT * FROM river_gauge", db=influx_db)
    assert [(r["time"], r["device"], r["site"], r["level_cm"], r["battery_v"]) for r in rows] == [
        (NOW, "wl-brantas-kanigoro", "kanigoro", 123.4, 12.9),
        (NOW + 60 * 10**9, "wl-brantas-kanigoro", "kanigoro", 124.0, None),
        (NOW + 120 * 10**9 + 250_000_000, "wl-brantas-kanigoro", "kanigoro", 125.5, None),
        (NOW + 180 * 10**9, "wl-brantas-kanigoro", "kanigoro", 126.75, 12.8),
        (NOW + 240 * 10**9 + 7, "wl-brantas-kanigoro", "kanigoro", 127.125, 13.0),
    ]
    [row] = influx.rows("SELECT * FROM air_quality", db=influx_db)
    assert (row["time"], row["device"], row["site"], row["pm25"], row["pm10"]) == (
        NOW + 5 * 10**9, "aq-kanigoro", "kanigoro", 35.5, 80.0)


REJECTIONS = [
    pytest.param(GAUGE, b"\x00\x01binary", "not_json", id="not-json"),
    pytest.param(GAUGE, b'{"ts": 1, "v": 2}', "bad_schema", id="bad-schema"),
    pytest.param("pantau/kanigoro/wl-nope/telemetry", b'{"ts": 1, "values": {"a": 1}}',
                 "unknown_device", id="unknown-device"),
    pytest.param("pantau/srengat/wl-brantas-kanigoro/telemetry",
                 b'{"ts": 1, "values": {"level_cm": 1}}', "bad_topic", id="wrong-site"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"level_cm": 1}}' % NOW_S + b" " * 70000,
                 "payload_too_large", id="too-large"),
    pytest.param(GAUGE, b'{"ts": "tuesday", "values": {"level_cm": 1}}', "bad_timestamp",
                 id="bad-ts"),
    pytest.param(GAUGE, b'{"values": {"level_cm": 1}}', "missing_timestamp", id="missing-ts"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"level_cm": 1}}' % (NOW_S + 86400),
                 "ts_in_future", id="future"),
    pytest.param(GAUGE, b'{"ts": 1000000000, "values": {"level_cm": 1}}', "ts_too_old",
                 id="old"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"depth": 1}}' % NOW_S, "unknown_metric",
                 id="unknown-metric"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"level_cm": "high"}}' % NOW_S, "not_a_number",
                 id="not-a-number"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"level_cm": NaN}}' % NOW_S, "not_finite",
                 id="nan"),
    pytest.param(GAUGE, b'{"ts": %d, "values": {"level_cm": 99999}}' % NOW_S, "out_of_range",
                 id="out-of-range"),
    pytest.param(GAUGE, b'[{"bn": "x:", "bt": %d, "n": "level_cm", "u": "m", "v": 1}]' % NOW_S,
                 "unit_mismatch", id="unit-mismatch"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), REJECTIONS)
async def test_every_rejection_reaches_the_dead_letter_topic(
        topic: str, payload: bytes, reason: str, pantau_env: EnvFactory, influx: InfluxDB1,
        influx_db: str, mqtt_client: Any, tmp_path: Path) -> None:
    watcher = mqtt_client(ADMIN_USER)
    watcher.subscribe("pantau/deadletter/#")
    publisher = mqtt_client(ADMIN_USER)  # may publish anywhere, so topic errors reach Pantau
    env = pantau_env(influx_db)
    async with run_pantau(env):
        publisher.publish(topic, payload)
        msg = await _get(watcher)
        m = await scrape(env)
    assert msg.topic == f"pantau/deadletter/{reason}"
    record = json.loads(msg.payload)
    assert (record["reason"], record["topic"]) == (reason, topic)
    assert record["detail"]
    original = record.get("payload", "").encode() if "payload" in record else None
    if record.get("payload_truncated"):  # oversized: a prefix, the length and a digest
        assert payload.startswith(original or b"") and len(original or b"") < len(payload)
        assert record["payload_bytes"] == len(payload)
        assert record["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    else:
        assert original == payload or (original is None and "payload_b64" in record)
    # the durable copy, and the counter under the same reason
    lines = (Path(env["PANTAU_STATE_DIR"]) / "deadletter.jsonl").read_text().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == [reason]
    assert (m.get(f'pantau_messages_rejected_total{{reason="{reason}"}}') == 1
            or m.get(f'pantau_readings_rejected_total{{reason="{reason}"}}') == 1), {
        k: v for k, v in m.items() if "_rejected_total" in k}
    assert count(influx, influx_db, "river_gauge") == 0


async def _get(probe: Any) -> Any:
    return await asyncio.to_thread(probe.get, 10.0)


async def test_http_api(pantau_env: EnvFactory, influx_db: str, mqtt_client: Any) -> None:
    env = pantau_env(influx_db)
    dev = mqtt_client("wl-brantas-kanigoro")
    base = f"http://{env['PANTAU_HTTP_LISTEN']}"
    async with run_pantau(env), aiohttp.ClientSession() as s:
        dev.publish("pantau/kanigoro/wl-brantas-kanigoro/status", "offline")
        async with s.get(f"{base}/healthz") as r:
            assert r.status == 200
        async def ready() -> int:
            async with s.get(f"{base}/readyz") as r:
                return r.status
        for _ in range(100):
            if await ready() == 200:
                break
            await asyncio.sleep(0.05)
        async with s.get(f"{base}/readyz") as r:
            assert r.status == 200
            assert (await r.json())["checks"] == {"mqtt": "ok", "database": "ok",
                                                  "deadletter": "ok"}
        async with s.get(f"{base}/api/devices", headers=api_headers(env)) as r:
            devices = await r.json()
        gauge = next(d for d in devices if d["id"] == "wl-brantas-kanigoro")
        assert gauge["kind"] == "river_gauge" and gauge["site"] == "kanigoro"
        assert {"name": "level_cm", "unit": "cm"} in gauge["metrics"]
        assert isinstance(gauge["lat"], float) and isinstance(gauge["lon"], float)
        m = await scrape(env)
    for name in ("pantau_messages_received_total", "pantau_messages_unacked",
                 "pantau_queue_batches", "pantau_mqtt_connected"):
        assert name in m, name


async def test_a_refused_reading_is_isolated_and_the_rest_stored(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any) -> None:
    # A string-typed battery_v in the same shard makes InfluxDB refuse float battery_v points.
    influx.write(f'rain_gauge,device=old,site=x battery_v="dead" {NOW - 10**9}', db=influx_db)
    watcher = mqtt_client(ADMIN_USER)
    watcher.subscribe("pantau/deadletter/#")
    rain = mqtt_client("rg-nglegok")
    gauge = mqtt_client("wl-brantas-kanigoro")
    env = pantau_env(influx_db)
    async with run_pantau(env):
        rain.publish("pantau/nglegok/rg-nglegok/telemetry",
                     json.dumps({"ts": NOW_S, "values": {"rain_mm": 2.5, "battery_v": 12.1}}))
        gauge.publish(GAUGE, json.dumps({"ts": NOW_S, "values": {"level_cm": 150.5}}))
        msg = await _get(watcher)
        # the dead letter is out before the batch's counters move; they have once it is acked
        await wait_for(lambda: reached(env, "pantau_messages_acked_total", 2),
                       what="both messages acknowledged")
        m = await scrape(env)
    record = json.loads(msg.payload)
    assert msg.topic == "pantau/deadletter/refused_by_database"
    assert [(r["metric"], r["reason"]) for r in record["readings"]] == [
        ("battery_v", "refused_by_database")]
    [rain_row] = influx.rows("SELECT rain_mm FROM rain_gauge WHERE device='rg-nglegok'",
                             db=influx_db)
    assert (rain_row["time"], rain_row["rain_mm"]) == (NOW, 2.5)
    [gauge_row] = influx.rows("SELECT level_cm FROM river_gauge", db=influx_db)
    assert gauge_row["level_cm"] == 150.5
    assert m['pantau_readings_rejected_total{reason="refused_by_database"}'] == 1
    assert m["pantau_readings_written_total"] == 2
    assert "pantau_write_splits_total" in m  # counted when the batch was split


async def test_broker_restart_reconnects_and_resumes_the_session(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any,
        spawn: Any, tmp_path: Path) -> None:
    from pantau.devstack import Mosquitto, stack_users
    broker = spawn(Mosquitto(tmp_path / "broker", users=stack_users(["wl-brantas-kanigoro"])))
    env = pantau_env(influx_db, broker=broker)
    async with run_pantau(env):
        dev = mqtt_client("wl-brantas-kanigoro", broker=broker)
        dev.publish(GAUGE, json.dumps({"ts": NOW_S, "values": {"level_cm": 1.0}}))
        await wait_for(lambda: count(influx, influx_db, "river_gauge") == 1, what="1st point")
        dev.client.disconnect()
        broker.stop()  # clean stop: the session is saved in the broker's persistence file
        await asyncio.sleep(1.0)
        broker.start()
        # Published while Pantau is still reconnecting: queued in Pantau's session.
        dev2 = mqtt_client("wl-brantas-kanigoro", broker=broker)
        dev2.publish(GAUGE, json.dumps({"ts": NOW_S + 1, "values": {"level_cm": 2.0}}))
        await wait_for(lambda: count(influx, influx_db, "river_gauge") == 2, 20, "2nd point")
        m = await scrape(env)
    assert [r["level_cm"] for r in influx.rows("SELECT level_cm FROM river_gauge",
                                               db=influx_db)] == [1.0, 2.0]
    assert m.get("pantau_mqtt_reconnects_total", 0) >= 1
