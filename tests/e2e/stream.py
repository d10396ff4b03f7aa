"""A steady QoS 1 publisher on its own thread, for fault tests: device-timestamped readings,
each (device, timestamp) unique, every publish waited for (PUBACK) in a bounded window."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pantau.devstack import ADMIN_USER, Mosquitto

DEVICES = [("kanigoro", "wl-brantas-kanigoro"), ("srengat", "wl-brantas-srengat"),
           ("kesamben", "wl-brantas-kesamben")]


def expected_value(i: int) -> float:
    return 100.0 + (i % 1000) / 8


class Stream(threading.Thread):
    """Publishes ``n`` messages at ``rate`` per second; message i goes to device i % 3 with
    timestamp ``t0 + i`` ms and level ``expected_value(i)``."""

    def __init__(self, broker: Mosquitto, n: int, rate: float, t0_ms: int) -> None:
        super().__init__(daemon=True)
        self.n, self.rate, self.t0_ms = n, rate, t0_ms
        self.acked = 0
        self.error: BaseException | None = None
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"stream-{time.time_ns()}",
                        protocol=mqtt.MQTTv311)
        c.username_pw_set(*broker.credentials(ADMIN_USER))
        c.max_inflight_messages_set(100)
        c.on_publish = self._on_publish
        c.connect(broker.host, broker.port)
        self.client = c

    def _on_publish(self, *_: object) -> None:
        self.acked += 1

    def run(self) -> None:
        try:
            self.client.loop_start()
            start = time.monotonic()
            for i in range(self.n):
                site, dev = DEVICES[i % len(DEVICES)]
                body = {"ts": self.t0_ms + i, "values": {"level_cm": expected_value(i)}}
                self.client.publish(f"pantau/{site}/{dev}/telemetry", json.dumps(body), qos=1)
                while i - self.acked > 1000:  # bounded: paho drops past 65,535 queued
                    time.sleep(0.005)
                delay = start + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            deadline = time.monotonic() + 60
            while self.acked < self.n and time.monotonic() < deadline:
                time.sleep(0.01)
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.client.disconnect()
            self.client.loop_stop()
