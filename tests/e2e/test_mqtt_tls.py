"""``pantau run`` over ``mqtts://`` against Debian's real Mosquitto and InfluxDB: a device that
publishes over TLS gets every reading stored; a broker certificate from another CA keeps
Pantau unready, and its log names the reason without a secret."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.registry import default_registry_path, load_registry
from pantau.devstack import (
    PANTAU_USER,
    DevstackError,
    InfluxDB1,
    Mosquitto,
    ensure_packages,
    stack_users,
)
from pantau.devstack.certs import CertFiles, make_certs
from tests.e2e.conftest import EnvFactory, PantauProcess, wait_for

SITE, DEVICE = "kanigoro", "wl-brantas-kanigoro"
N = 2000  # ~300 KB of TLS records: many reads of whole and split records


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    work = tmp_path_factory.mktemp("mosquitto-tls")
    ids = [d.id for d in load_registry(default_registry_path()).devices]
    broker = Mosquitto(work / "broker", users=stack_users(ids), tls=make_certs(work / "certs"))
    try:
        ensure_packages("mosquitto", "openssl")
        broker.start()
    except DevstackError as e:  # a missing service fails, never skips
        pytest.fail(str(e), pytrace=False)
    yield broker
    broker.stop()


def _tls_env(pantau_env: EnvFactory, db: str, broker: Mosquitto, ca: str) -> dict[str, str]:
    assert broker.tls is not None
    return pantau_env(db, broker=broker,
                      PANTAU_MQTT_URL=broker.url_for(PANTAU_USER, port=broker.tls_port,
                                                     scheme="mqtts"),
                      PANTAU_MQTT_TLS_CA_FILE=ca,
                      PANTAU_MQTT_TLS_CERT_FILE=str(broker.tls.client_cert),
                      PANTAU_MQTT_TLS_KEY_FILE=str(broker.tls.client_key))


async def _readyz(p: PantauProcess, want: int) -> int:
    """Poll /readyz for up to 20 s until it answers ``want``; the last status (0: no answer)."""
    url = f"http://{p.env['PANTAU_HTTP_LISTEN']}/readyz"
    status = 0
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.get(url) as r:
                    status = r.status
            except aiohttp.ClientError:
                status = 0
            if status == want:
                break
            await asyncio.sleep(0.1)
    return status


def _publish_over_tls(broker: Mosquitto, t0_ms: int) -> int:
    """The device publishes N readings (QoS 1) on the devices TLS listener; how many were
    acknowledged."""
    assert broker.tls is not None
    acked = 0

    def on_publish(*_: Any) -> None:
        nonlocal acked
        acked += 1

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv311)
    c.username_pw_set(*broker.credentials(DEVICE))
    c.tls_set_context(ssl.create_default_context(cafile=str(broker.tls.ca)))
    c.on_publish = on_publish
    c.connect(broker.host, broker.device_tls_port)
    c.loop_start()
    try:
        for i in range(N):
            body = {"ts": t0_ms + i, "values": {"level_cm": 100 + i / 16, "battery_v": 12.5}}
            c.publish(f"pantau/{SITE}/{DEVICE}/telemetry", json.dumps(body), qos=1)
            while i - acked > 500:
                time.sleep(0.005)
        deadline = time.monotonic() + 30
        while acked < N and time.monotonic() < deadline:
            time.sleep(0.01)
        return acked
    finally:
        c.disconnect()
        c.loop_stop()


async def test_a_device_publishing_over_tls_gets_its_data_stored(
        pantau_env: EnvFactory, pantau_process: Any, tls_broker: Mosquitto,
        influx: InfluxDB1, influx_db: str) -> None:
    assert tls_broker.tls is not None
    p: PantauProcess = pantau_process(_tls_env(pantau_env, influx_db, tls_broker,
                                               str(tls_broker.tls.ca)))
    p.start()
    assert await _readyz(p, 200) == 200, p.log.read_text()[-3000:]
    t0_ms = int(time.time() * 1000) - 3_600_000
    assert await asyncio.to_thread(_publish_over_tls, tls_broker, t0_ms) == N

    def stored() -> dict[int, float]:
        rows = influx.rows(f"SELECT level_cm FROM river_gauge WHERE device = '{DEVICE}'",
                           db=influx_db)
        return {r["time"]: r["level_cm"] for r in rows}

    await wait_for(lambda: len(stored()) >= N, 60, f"{N} readings stored")
    assert stored() == {(t0_ms + i) * 1_000_000: 100 + i / 16 for i in range(N)}
    assert p.stop() == 0
    assert tls_broker.credentials(PANTAU_USER)[1] not in p.log.read_text()


async def test_a_broker_certificate_from_another_ca_keeps_pantau_unready(
        pantau_env: EnvFactory, pantau_process: Any, tls_broker: Mosquitto,
        influx_db: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    other: CertFiles = make_certs(tmp_path_factory.mktemp("other-ca"))
    p: PantauProcess = pantau_process(_tls_env(pantau_env, influx_db, tls_broker,
                                               str(other.ca)))
    p.start()
    await wait_for(lambda: "certificate was refused" in p.log.read_text(), 30,
                   "the refusal in the log")
    assert await _readyz(p, 503) == 503
    p.stop()
    log = p.log.read_text()
    assert "self-signed certificate in certificate chain" in log, log[-3000:]
    assert tls_broker.credentials(PANTAU_USER)[1] not in log
