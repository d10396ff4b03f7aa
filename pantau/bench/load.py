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
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = (_utf8("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
               + _utf8(f"bench-pub-{index}-{time.time_ns()}") + _utf8(user) + _utf8(password))
    sock.sendall(_packet(0x10, connect))
    connack = sock.recv(4)
    if len(connack) != 4 or connack[3] != 0:
        raise RuntimeError(f"broker refused the bench publisher: CONNACK {connack!r}")
    topics = [_utf8(f"pantau/{site}/{dev}/telemetry") for site, dev in devices]
    acked, pending = 0, b""
    t0 = time.perf_counter()
    last_us, i = 0, 0
    step_us = round(cadence_s * 1e6)
    if step_us:
        per_device = -(-n // len(topics))
        start_us = time.time_ns() // 1000 - per_device * step_us
        offset_us = [d * step_us // len(topics) for d in range(len(topics))]
    while i < n or acked < n:
        due = n if not rate else min(n, int((time.perf_counter() - t0) * rate) + 1)
        if i < due and i - acked < WINDOW:
            chunk = []
            for _ in range(min(CHUNK, due - i, WINDOW - (i - acked))):
                d = i % len(topics)
                if step_us:  # message k = i // len(topics) of device d, at its cadence
                    ts_us = start_us + offset_us[d] + (i // len(topics)) * step_us
                else:
                    ts_us = last_us = max(last_us + 1, time.time_ns() // 1000)
                mid = i % 65535 + 1
                chunk.append(_packet(0x32, topics[d] + struct.pack("!H", mid)
                                     + payload(ts_us, i)))
                i += 1
            sock.sendall(b"".join(chunk))
        wait = 0.0 if i < due and i - acked < WINDOW else 0.001 if i < n else 1.0
        ready, _, _ = select.select([sock], [], [], wait)
        if ready:
            data = pending + sock.recv(65536)
            if len(data) == len(pending):
                raise RuntimeError("broker closed the bench publisher's connection")
            whole = len(data) - len(data) % 4  # PUBACK: 0x40 0x02 mid(2)
            acked += whole // 4
            pending = data[whole:]
    seconds = time.perf_counter() - t0
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
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
