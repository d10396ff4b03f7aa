"""Device status end to end: real Mosquitto and InfluxDB, Pantau in this loop, the HTTP API.

- A device that publishes and then goes silent is reported offline (cause ``timeout``) within
  two expected intervals of its last message (plus the sweep period).
- A device whose connection dies without DISCONNECT is offline (cause ``lwt``) at once: the
  broker publishes its last will.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pantau.devstack import ADMIN_USER, Mosquitto
from tests.e2e.conftest import EnvFactory, api_headers, run_pantau

INTERVAL_S = 1.5
REGISTRY = f"""\
sites:
  - {{id: kanigoro, lat: -8.13, lon: 112.21}}
kinds:
  river_gauge:
    interval_s: 60
    metrics:
      level_cm: {{unit: cm}}
      battery_v: {{unit: V}}
devices:
  - {{id: test-device-a, kind: river_gauge, site: kanigoro, interval_s: {INTERVAL_S}}}
  - {{id: test-device-b, kind: river_gauge, site: kanigoro}}
"""


class Api:
    def __init__(self, env: dict[str, str]) -> None:
        self.base = f"http://{env['PANTAU_HTTP_LISTEN']}/api/devices"
        self.headers = api_headers(env)
        self.last: dict[str, Any] = {}

    async def get(self, path: str = "") -> Any:
        async with aiohttp.ClientSession(headers=self.headers) as s, \
                s.get(self.base + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def poll(self, device: str, status: str, within: float) -> float:
        """Seconds until the device shows ``status`` (fails after ``within``)."""
        t0 = time.monotonic()
        while True:
            self.last = await self.get(f"/{device}")
            if self.last["status"] == status:
                return time.monotonic() - t0
            assert time.monotonic() - t0 < within, f"{device} not {status}: {self.last}"
            await asyncio.sleep(0.05)


def registry(tmp_path: Path) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return str(path)


def reading(level: float) -> str:
    return json.dumps({"ts": time.time(), "values": {"level_cm": level, "battery_v": 12.4}})


async def test_a_silent_device_is_offline_within_two_intervals(
        pantau_env: EnvFactory, influx_db: str, mqtt_client: Any, tmp_path: Path) -> None:
    env = pantau_env(influx_db, PANTAU_REGISTRY=registry(tmp_path))
    api = Api(env)
    dev = mqtt_client("test-device-a")
    async with run_pantau(env):
        dev.publish("pantau/kanigoro/test-device-a/telemetry", reading(101.5))
        sent = time.monotonic()
        await api.poll("test-device-a", "online", 5)
        assert api.last["values"]["level_cm"]["value"] == 101.5
        assert api.last["battery_v"] == 12.4 and api.last["status_cause"] == "telemetry"
        await api.poll("test-device-a", "offline", 3 * INTERVAL_S + 2)
        silent = time.monotonic() - sent
        history = await api.get("/test-device-a/history")
        listed = {d["id"]: d for d in await api.get("?status=offline")}
    print(f"offline {silent:.2f} s after the last message (interval {INTERVAL_S} s)")
    assert 2 * INTERVAL_S - 0.3 <= silent <= 2 * INTERVAL_S + 0.6, silent
    assert [(h["status"], h["cause"]) for h in history] == [("offline", "timeout"),
                                                            ("online", "telemetry")]
    assert "test-device-a" in listed and listed["test-device-a"]["battery_v"] == 12.4


async def test_a_dead_connection_fires_the_lwt_and_the_device_is_offline_promptly(
        pantau_env: EnvFactory, influx_db: str, mosquitto: Mosquitto, mqtt_client: Any,
        tmp_path: Path) -> None:
    env = pantau_env(influx_db, PANTAU_REGISTRY=registry(tmp_path))
    api = Api(env)
    status_topic = "pantau/kanigoro/test-device-b/status"
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-status-b",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(*mosquitto.credentials("test-device-b"))
    c.will_set(status_topic, b"offline", qos=1, retain=True)
    try:
        async with run_pantau(env):
            c.connect(mosquitto.host, mosquitto.port, keepalive=60)
            c.loop_start()
            c.publish(status_topic, b"online", qos=1, retain=True).wait_for_publish(5)
            c.publish("pantau/kanigoro/test-device-b/telemetry", reading(7.0),
                      qos=1).wait_for_publish(5)
            await api.poll("test-device-b", "online", 5)
            await asyncio.sleep(0.5)  # the telemetry is stored: it must not revive the device later
            c.loop_stop()
            sock = c.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker sends the last will
            took = await api.poll("test-device-b", "offline", 5)
            assert api.last["status_cause"] == "lwt"
            await asyncio.sleep(1.0)
            assert (await api.get("/test-device-b"))["status"] == "offline"
            history = await api.get("/test-device-b/history")
    finally:
        admin = mqtt_client(ADMIN_USER)  # clear the retained status for later tests
        admin.client.publish(status_topic, b"", qos=1, retain=True).wait_for_publish(5)
    print(f"offline {took:.3f} s after the connection died (LWT)")
    assert took < 1.0, took
    assert [(h["status"], h["cause"]) for h in history][:2] == [("offline", "lwt"),
                                                                ("online", "lwt")]
