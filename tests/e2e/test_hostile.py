"""Hostile input end to end (issue #9): no message can stall ingest.

Real Mosquitto and InfluxDB. Hostile payloads (`tests.ingest.hostile`) go through the broker
between valid ones; every valid reading must be stored exactly, every hostile message must be
dead-lettered exactly once (one record in the dead-letter file), and none may need the
pipeline's last-resort ``internal_error``: the decoder itself refuses them with a reason.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pantau.devstack import ADMIN_USER, InfluxDB1
from tests.e2e.conftest import EnvFactory, run_pantau, wait_for
from tests.ingest.hostile import BIG, hostile_payloads

GAUGE = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"


def records(env: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env["PANTAU_STATE_DIR"]) / "deadletter.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def identity(record: dict[str, Any]) -> str:
    """SHA-256 of the payload a record stands for (whole, or only summarised when large)."""
    if "payload_sha256" in record:
        return str(record["payload_sha256"])
    raw = (record["payload"].encode() if "payload" in record
           else base64.b64decode(record["payload_b64"]))
    return hashlib.sha256(raw).hexdigest()


def levels(influx: InfluxDB1, db: str) -> dict[int, float]:
    return {r["time"]: r["level_cm"] for r in influx.rows("SELECT level_cm FROM river_gauge",
                                                           db=db)}


def valid(ts_ms: int, i: int) -> bytes:
    return json.dumps({"ts": ts_ms, "values": {"level_cm": 100 + i / 8}}).encode()


async def test_a_400_digit_timestamp_does_not_stall_ingest(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any) -> None:
    dev = mqtt_client("wl-brantas-kanigoro")
    env = pantau_env(influx_db)
    t0_ms = (int(time.time()) - 600) * 1000
    async with run_pantau(env):
        dev.publish(GAUGE, f'{{"ts": {BIG}, "values": {{"level_cm": 1}}}}')
        for i in range(100):
            dev.publish(GAUGE, valid(t0_ms + i, i))
        await wait_for(lambda: len(levels(influx, influx_db)) == 100, within=20,
                       what="the 100 valid readings sent after the 400-digit timestamp")
    assert [r["reason"] for r in records(env)] == ["bad_timestamp"]


async def test_hostile_payloads_between_valid_ones(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any) -> None:
    now_s = int(time.time())
    hostile = hostile_payloads(now_s, 300, random.Random(9))
    publisher = mqtt_client(ADMIN_USER)
    env = pantau_env(influx_db)
    t0_ms = (now_s - 600) * 1000
    async with run_pantau(env):
        for i, bad in enumerate(hostile):
            publisher.publish(GAUGE, bad)
            publisher.publish(GAUGE, valid(t0_ms + i, i))
        await wait_for(lambda: len(levels(influx, influx_db)) == len(hostile)
                       and len(records(env)) >= len(hostile), within=30,
                       what="every valid reading stored and every hostile one dead-lettered")
    assert levels(influx, influx_db) == {(t0_ms + i) * 1_000_000: 100 + i / 8
                                         for i in range(len(hostile))}
    got = records(env)
    assert Counter(identity(r) for r in got) == Counter(hashlib.sha256(p).hexdigest()
                                                        for p in hostile)
    assert "internal_error" not in {r["reason"] for r in got}
