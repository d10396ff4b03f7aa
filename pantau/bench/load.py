"""Load-generating processes of the benchmark: publishers and the bare paho subscriber.

Each runs in its own process (``multiprocessing`` spawn), so Pantau, the broker and the load
compete for the machine's cores the way separate programs do in production.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WINDOW = 10000  # QoS 1 publishes in flight per publisher (< 65,535 message ids)
CHUNK = 200  # messages per send


def payload(ts_us: int, i: int) -> bytes:
    """One weather-station reading set, ~140 bytes."""
    return json.dumps({"ts": ts_us, "values": {
        "temperature_c": round(24 + (i % 97) / 10, 2), "humidity_pct": round(60 + i % 40, 1),
        "pressure_hpa": round(1005 + (i % 50) / 10, 1), "wind_ms": round((i % 130) / 10, 2),
        "wind_dir_deg": float(i % 360)}}, separators=(",", ":")).encode()


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _packet(kind: int, body: bytes) -> bytes:
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            return bytes([kind]) + bytes(length) + body


def connect_raw(host: str, port: int, user: str, password: str, client_id: str, *,
                keepalive_s: int = 60, timeout: float | None = None) -> socket.socket:
    """A TCP connection with an MQTT 3.1.1 session on it (CONNECT with a clean session, user
    and password; CONNACK read): ConnectionError when the broker refuses it."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = (_utf8("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive_s)
               + _utf8(client_id) + _utf8(user) + _utf8(password))
    sock.sendall(_packet(0x10, connect))
    connack = sock.recv(4)
    if len(connack) != 4 or connack[3] != 0:
        sock.close()
        raise ConnectionError(f"broker refused the publisher {client_id}: CONNACK {connack!r}")
    sock.settimeout(None)
    return sock


def publish_packet(topic: bytes, i: int, body: bytes) -> bytes:
    """The QoS 1 PUBLISH of the ``i``-th message (``topic`` as `_utf8` encodes it)."""
    return _packet(0x32, topic + struct.pack("!H", i % 65535 + 1) + body)


class RawLink:
    """A minimal MQTT 3.1.1 publisher connection on a raw socket: CONNECT, pipelined QoS 1
    PUBLISH packets (`send`), PUBACKs counted in ``acked`` (`read_acks`), DISCONNECT."""

    def __init__(self, host: str, port: int, user: str, password: str, client_id: str) -> None:
        self.sock = connect_raw(host, port, user, password, client_id)
        self.acked, self._pending = 0, b""

    def send(self, packets: list[bytes]) -> None:
        self.sock.sendall(b"".join(packets))

    def read_acks(self, wait: float) -> None:
        """Count the PUBACKs that arrive within ``wait`` seconds (0: only those already in)."""
        ready, _, _ = select.select([self.sock], [], [], wait)
        if ready:
            data = self._pending + self.sock.recv(65536)
            if len(data) == len(self._pending):
                raise RuntimeError("broker closed the bench publisher's connection")
            whole = len(data) - len(data) % 4  # PUBACK: 0x40 0x02 mid(2)
            self.acked += whole // 4
            self._pending = data[whole:]

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def publish(host: str, port: int, user: str, password: str, devices: list[tuple[str, str]],
            n: int, index: int, rate: float = 0.0, cadence_s: float = 0.0) -> dict[str, float]:
    """Publish ``n`` QoS 1 messages round-robin over ``devices`` ((site, id) pairs, owned by
    this publisher alone), each stamped with a strictly increasing device time in µs; at
    ``rate`` messages/s when given, else flat out.

    Timestamps: by default the wall clock at sending (µs, strictly increasing), which the spine
    benchmark's publish-to-stored latency is measured from. With ``cadence_s`` (the devices'
    registry ``interval_s``), the devices' own cadence instead: message k of a device is
    stamped ``start + k * cadence_s`` (plus a fixed offset per device, spreading the devices
    over the interval), with ``start`` in the past so that each device's last reading is just
    before now. Each (device, timestamp) stays unique; the caller keeps
    ``ceil(n / len(devices)) * cadence_s`` within ``ingest.max_age_s``.

    A minimal MQTT 3.1.1 publisher on a raw socket (CONNECT, pipelined PUBLISH, counted
    PUBACKs, at most `WINDOW` unacknowledged), so that the load generator is never the
    bottleneck: paho's Python publish path tops out far below the broker and Pantau."""
    link = RawLink(host, port, user, password, f"bench-pub-{index}-{time.time_ns()}")
    topics = [_utf8(f"pantau/{site}/{dev}/telemetry") for site, dev in devices]
    t0 = time.perf_counter()
    last_us, i = 0, 0
    step_us = round(cadence_s * 1e6)
    if step_us:
        per_device = -(-n // len(topics))
        start_us = time.time_ns() // 1000 - per_device * step_us
        offset_us = [d * step_us // len(topics) for d in range(len(topics))]
    while i < n or link.acked < n:
        due = n if not rate else min(n, int((time.perf_counter() - t0) * rate) + 1)
        if i < due and i - link.acked < WINDOW:
            chunk = []
            for _ in range(min(CHUNK, due - i, WINDOW - (i - link.acked))):
                d = i % len(topics)
                if step_us:  # message k = i // len(topics) of device d, at its cadence
                    ts_us = start_us + offset_us[d] + (i // len(topics)) * step_us
                else:
                    ts_us = last_us = max(last_us + 1, time.time_ns() // 1000)
                chunk.append(publish_packet(topics[d], i, payload(ts_us, i)))
                i += 1
            link.send(chunk)
        link.read_acks(0.0 if i < due and i - link.acked < WINDOW else 0.001 if i < n else 1.0)
    seconds = time.perf_counter() - t0
    link.close()
    return {"sent": n, "seconds": seconds}


def bare_subscriber(host: str, port: int, user: str, password: str, n: int, protocol: int,
                    ready: Any, result: Any) -> None:
    """A bare paho subscriber (QoS 1, paho's automatic acks, no processing): counts ``n``
    messages and reports the rate between the first and the last."""
    got, first = 0, 0.0

    def on_message(client: mqtt.Client, *_: Any) -> None:
        nonlocal got, first
        if got == 0:
            first = time.perf_counter()
        got += 1
        if got >= n:
            client.disconnect()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{protocol}",
                    protocol=mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.on_message = on_message
    c.on_connect = lambda cl, *_: cl.subscribe("pantau/+/+/telemetry", qos=1)
    c.on_subscribe = lambda *_: ready.set()
    if protocol == 5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.ReceiveMaximum = 20000
        c.connect(host, port, properties=props)
    else:
        c.connect(host, port)
    cpu0 = time.process_time()
    c.loop_forever()
    last = time.perf_counter()
    result.put({"received": got, "rate": got / max(last - first, 1e-9),
                "cpu_s": time.process_time() - cpu0})
