"""Bounded by bytes (issue #9): multi-megabyte payloads against the real Mosquitto.

Pantau runs as its own process (its memory measured alone). With the shipped broker limits a
4 MiB PUBLISH disconnects its sender before the broker buffers it, a payload between
``ingest.max_payload_bytes`` and the broker's ``message_size_limit`` reaches Pantau and is
dead-lettered as a prefix, its length and its SHA-256, and the valid readings sent in between
are all stored. With a broker that has no limits, Pantau's announced Maximum Packet Size keeps
the big ones away from it all the same. Figures (RSS, how long the valid readings took) are
printed, not asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.settings import IngestSettings
from pantau.devstack import ADMIN_USER, InfluxDB1, Mosquitto
from pantau.devstack import mosquitto as devstack_mosquitto
from tests.e2e.conftest import EnvFactory, PantauProcess, wait_for
from tests.e2e.test_faults import _ready
from tests.e2e.test_hostile import levels, records, valid

GAUGE = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
MIB = 1024 * 1024
ROUNDS = 6
VALID = 100


def oversized(broker: Mosquitto, size: int) -> str:
    """Publish ``size`` bytes at QoS 1 as the admin over MQTT 3.1.1; how the broker answered
    (``disconnected: <reason>`` or ``acked``)."""
    done, outcome = threading.Event(), []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"big-{time.time_ns()}",
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(*broker.credentials(ADMIN_USER))
    c.on_disconnect = lambda _c, _u, _f, rc, _p: (outcome.append(f"disconnected: {rc}"),
                                                  done.set())
    c.on_publish = lambda *_: (outcome.append("acked"), done.set())
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.publish(GAUGE, b"{" + b"7" * (size - 1), qos=1)
        assert done.wait(30), "the broker neither acknowledged nor disconnected"
    finally:
        c.disconnect()
        c.loop_stop()
    return outcome[0]


class Peak(threading.Thread):
    """Samples a process's RSS every 20 ms until stopped; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.halt = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)


async def _hammer(broker: Mosquitto, p: PantauProcess, influx: InfluxDB1, db: str,
                  mqtt_client: Any, *, middle: bool) -> tuple[list[str], Peak, float]:
    """4 MiB PUBLISHes from a thread while valid readings (and 80 kB payloads when
    ``middle``) flow; returns the big ones' outcomes, Pantau's RSS peak and how long after
    the last valid publish the last valid reading was stored."""
    assert p.proc is not None
    peak = Peak(p.proc.pid)
    peak.start()
    good = mqtt_client("wl-brantas-kanigoro", broker=broker)
    admin = mqtt_client(ADMIN_USER, broker=broker)
    t0_ms = (int(time.time()) - 600) * 1000
    outcomes: list[str] = []
    big = threading.Thread(target=lambda: outcomes.extend(oversized(broker, 4 * MIB)
                                                          for _ in range(ROUNDS)))
    big.start()
    for i in range(VALID):
        if middle and i < ROUNDS:  # between max_payload_bytes and the broker's limit
            assert admin.publish(GAUGE, b"%d" % i + b" " * 80_000).value == 0
        assert good.publish(GAUGE, valid(t0_ms + i, i)).value == 0
        await asyncio.sleep(0.02)
    sent = time.monotonic()
    await wait_for(lambda: len(levels(influx, db)) == VALID, within=30,
                   what="the valid readings sent beside the big ones")
    lag = time.monotonic() - sent
    big.join(60)
    peak.halt.set()
    peak.join()
    return outcomes, peak, lag


@pytest.mark.slow
async def test_shipped_limits_refuse_megabytes_and_summarise_the_middle(
        pantau_env: EnvFactory, pantau_process: Any, mosquitto: Mosquitto, influx: InfluxDB1,
        influx_db: str, mqtt_client: Any) -> None:
    env = pantau_env(influx_db)
    p: PantauProcess = pantau_process(env)
    p.start()
    await _ready(p)
    outcomes, peak, took = await _hammer(mosquitto, p, influx, influx_db, mqtt_client,
                                         middle=True)
    await wait_for(lambda: len(records(env)) == ROUNDS, what="the 80 kB dead letters")
    print(f"\nshipped limits: {ROUNDS} x 4 MiB refused; {VALID} valid readings meanwhile, the "
          f"last stored {took:.2f} s after it was sent; Pantau peak RSS "
          f"{peak.peak / MIB:.0f} MiB")
    assert all(o.startswith("disconnected") for o in outcomes), outcomes
    got = records(env)
    for i, r in enumerate(got):
        payload = b"%d" % i + b" " * 80_000
        assert r["reason"] == "payload_too_large"
        assert r["payload_truncated"] is True and r["payload_bytes"] == len(payload)
        assert r["payload_sha256"] == hashlib.sha256(payload).hexdigest()
        assert r["payload"].encode() == payload[:len(r["payload"].encode())]
        assert len(json.dumps(r)) < 4096
    assert peak.peak < 400 * MIB
    assert p.stop() == 0


@pytest.mark.slow
async def test_announced_packet_size_keeps_megabytes_away_from_pantau(
        pantau_env: EnvFactory, pantau_process: Any, mosquitto: Mosquitto, influx: InfluxDB1,
        influx_db: str, mqtt_client: Any, spawn: Any, tmp_path: Path) -> None:
    open_broker = spawn(Mosquitto(tmp_path / "open", users=mosquitto.users,
                                  message_size_limit=0, max_packet_size=0))
    env = pantau_env(influx_db, broker=open_broker)
    p: PantauProcess = pantau_process(env)
    p.start()
    await _ready(p)
    base = psutil.Process(p.proc.pid).memory_info().rss if p.proc else 0
    outcomes, peak, took = await _hammer(open_broker, p, influx, influx_db, mqtt_client,
                                         middle=False)
    print(f"\nno broker limits: {ROUNDS} x 4 MiB accepted by the broker, none delivered to "
          f"Pantau; the last valid reading stored {took:.2f} s after it was sent; RSS "
          f"{base / MIB:.0f} -> peak {peak.peak / MIB:.0f} MiB")
    assert outcomes == ["acked"] * ROUNDS
    assert records(env) == []  # never delivered: the broker honours Maximum Packet Size
    assert peak.peak - base < 4 * MIB * ROUNDS // 2
    assert p.stop() == 0


def test_shipped_broker_configs_agree_on_the_limits() -> None:
    conf = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
    options = dict(line.split(None, 1) for line in conf.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    limits = {k: int(options[k]) for k in ("message_size_limit", "max_packet_size",
                                           "max_queued_bytes")}
    assert limits == {"message_size_limit": devstack_mosquitto.DEFAULT_MESSAGE_SIZE_LIMIT,
                      "max_packet_size": devstack_mosquitto.DEFAULT_MAX_PACKET_SIZE,
                      "max_queued_bytes": devstack_mosquitto.DEFAULT_MAX_QUEUED_BYTES}
    announced = 2 * IngestSettings().max_payload_bytes  # what pantau.app announces
    assert (IngestSettings().max_payload_bytes < limits["message_size_limit"]
            < limits["max_packet_size"] <= announced)
