"""A small built-in publisher of sample traffic: each registry device reports plausible values.

This is the demo feed of ``scripts/run.sh``; the full regency simulator (scenarios, faults,
10,000 devices) is ``devices`` territory. Each device connects with its own credentials and
client id, sets its LWT to ``offline`` on ``<prefix>/<site>/<device>/status``, announces
``online`` (retained) and publishes JSON telemetry at QoS 1 every ``interval_s / speed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.registry import Device, Metric
from ingest.errors import PantauError
from pantau.settings import Settings

log = logging.getLogger("pantau.sample")

# Typical values for the shipped metrics (centre, spread); unknown metrics use their range.
TYPICAL: dict[str, tuple[float, float]] = {
    "level_cm": (180.0, 20.0), "battery_v": (12.6, 0.2), "rain_mm": (0.4, 0.6),
    "pm25": (22.0, 8.0), "pm10": (45.0, 12.0), "co": (900.0, 200.0), "no2": (30.0, 10.0),
    "o3": (60.0, 20.0), "so2": (15.0, 5.0), "temperature_c": (27.0, 3.0),
    "humidity_pct": (78.0, 8.0), "pressure_hpa": (1009.0, 2.0), "wind_ms": (2.5, 1.5),
    "wind_dir_deg": (180.0, 90.0), "vehicles": (40.0, 20.0), "avg_speed_kmh": (38.0, 8.0),
    "power_w": (90.0, 5.0), "on": (1.0, 0.0), "fault": (0.0, 0.0),
}


def sample_value(m: Metric, rng: random.Random) -> float:
    centre, spread = TYPICAL.get(m.name, ((m.min + m.max) / 2 if abs(m.max) < 1e300 else 0.0,
                                          1.0))
    v = rng.gauss(centre, spread) if spread else centre
    v = min(max(v, m.min), m.max)
    return round(v) if m.unit in ("bool", "count") else round(v, 2)


def _client(settings: Settings, d: Device, password: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sample-{d.id}",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(d.id, password)
    status = f"{settings.mqtt.topic_prefix}/{d.site}/{d.id}/status"
    c.will_set(status, b"offline", qos=1, retain=True)
    c.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    c.loop_start()
    c.publish(status, b"online", qos=1, retain=True)
    return c


async def publish_samples(settings: Settings, credentials: str, *, speed: float = 60.0,
                          duration: float = 0.0, seed: int | None = None) -> int:
    """Publish until cancelled (or for ``duration`` seconds); prints a progress line."""
    from pantau.app import load_configured_registry

    try:
        passwords: dict[str, str] = json.loads(
            await asyncio.to_thread(Path(credentials).read_text))
    except (OSError, ValueError) as e:
        raise PantauError(f"{credentials}: cannot read device credentials: {e}") from e
    registry = load_configured_registry(settings)
    missing = [d.id for d in registry.devices if d.id not in passwords]
    if missing:
        raise PantauError(f"{credentials}: no password for {', '.join(missing)}")
    rng = random.Random(seed)
    clients = {d.id: _client(settings, d, passwords[d.id]) for d in registry.devices}
    due = {d.id: 0.0 for d in registry.devices}
    sent, t0, last_report = 0, time.monotonic(), 0.0
    try:
        while not duration or time.monotonic() - t0 < duration:
            now = time.monotonic()
            for d in registry.devices:
                if now < due[d.id]:
                    continue
                due[d.id] = now + d.interval_s / speed
                payload = {"ts": time.time_ns() // 1_000_000,
                           "values": {m.name: sample_value(m, rng) for m in d.metrics}}
                topic = f"{settings.mqtt.topic_prefix}/{d.site}/{d.id}/telemetry"
                clients[d.id].publish(topic, json.dumps(payload), qos=1)
                sent += 1
            if now - last_report >= 10:
                last_report = now
                print(f"sample: {sent} messages from {len(clients)} devices "
                      f"({sent / max(now - t0, 1e-9):.1f}/s)", flush=True)
            await asyncio.sleep(0.05)
    finally:
        for c in clients.values():
            c.disconnect()
            c.loop_stop()
    return 0
