"""LeanClient: the paho internals it relies on, its packet parser, and the real broker."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_client import LeanClient, _split_publish
from pantau.devstack import Mosquitto


def publish_packet(topic: str, mid: int, payload: bytes, *, v5: bool, flags: int = 0,
                   props: bytes = b"") -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + struct.pack("!H", mid)
    if v5:
        body += bytes([len(props)]) + props
    body += payload
    n, length = len(body), bytearray()
    while True:
        n, b = divmod(n, 128)
        length.append(b | (0x80 if n else 0))
        if not n:
            break
    return bytes([0x32 | flags]) + bytes(length) + body


def test_paho_internals_it_overrides_are_there() -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    for name in ("_sock_recv", "_handle_publish", "_packet_queue", "_send_puback", "loop_read"):
        assert callable(getattr(c, name)), name
    for name in ("_in_packet", "_msgtime_mutex", "_last_bytes_received", "_sock", "_protocol",
                 "_manual_ack"):
        assert hasattr(c, name), name


@pytest.mark.parametrize("v5", [pytest.param(True, id="v5"), pytest.param(False, id="v3")])
def test_parser_takes_every_complete_publish_and_stops_at_a_cut(v5: bool) -> None:
    got: list[tuple[str, bytes, int]] = []
    c = LeanClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                   fast_handler=lambda t, p, m: got.append((t, p, m)))
    big = b"x" * 300  # two-byte remaining length
    stream = (publish_packet("a/b", 1, b"one", v5=v5)
              + publish_packet("a/c", 2, big, v5=v5, flags=0x08 | 0x01,  # DUP + RETAIN
                               props=b"\x01\x01" if v5 else b"")
              + publish_packet("a/d", 3, b"three", v5=v5))
    cut = len(stream) - 4
    pos = c._parse_publishes(stream[:cut], 0, lambda t, p, m: got.append((t, p, m)))
    assert got == [("a/b", b"one", 1), ("a/c", big, 2)]
    assert stream[pos:cut] == stream[pos:][:cut - pos]  # stopped at the third packet's start
    assert c._parse_publishes(stream, pos, lambda t, p, m: got.append((t, p, m))) == len(stream)
    assert got[-1] == ("a/d", b"three", 3)


def test_parser_leaves_malformed_and_other_packets_to_paho() -> None:
    bad = publish_packet("ok", 1, b"p", v5=False).replace(b"ok", b"\xff\xfe")
    c = LeanClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    assert c._parse_publishes(bad, 0, lambda *a: None) == 0
    assert c._parse_publishes(b"\x40\x02\x00\x01", 0, lambda *a: None) == 0  # a PUBACK
    assert _split_publish(b"\x00\x09ab", 0, 4, False) is None  # topic longer than the packet


def subscribed(client: mqtt.Client, topic: str) -> None:
    """Subscribe ``client`` (its network loop running) to ``topic`` and wait for the SUBACK."""
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    client.subscribe(topic, qos=1)
    assert done.wait(30), f"no SUBACK for {topic}"


def test_real_broker_delivery_manual_ack_and_redelivery(mosquitto: Mosquitto) -> None:
    user, password = mosquitto.admin
    got: list[int] = []
    lock = threading.Lock()

    def connect(cid: str) -> LeanClient:
        c = LeanClient(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5,
                       manual_ack=True,
                       fast_handler=lambda t, p, m: (lock.acquire(), got.append(m),
                                                     lock.release()))
        c.username_pw_set(user, password)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        c.connect(mosquitto.host, mosquitto.port, clean_start=False, properties=props)
        return c

    sub = connect("lean-test")
    sub.loop_start()
    subscribed(sub, "lean/test")
    pub: Any = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.username_pw_set(user, password)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    for i in range(500):
        pub.publish("lean/test", f"m{i}", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 10
    while len(got) < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(got) == 500
    with lock:
        first = got[:400]
    sub.ack_many(first)  # acknowledge 400 of 500
    subscribed(sub, "lean/barrier")  # the broker handles packets in order: the acks are in
    sub.disconnect()
    sub.loop_stop()
    got.clear()
    again = connect("lean-test")  # the same session: the 100 unacknowledged come back
    again.loop_start()
    deadline = time.monotonic() + 10
    while len(got) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    again.disconnect()
    again.loop_stop()
    pub.disconnect()
    pub.loop_stop()
    assert len(got) == 100


def test_one_loop_read_reads_the_socket_once_however_long_the_backlog() -> None:
    # A backlog far longer than one read, with packets cut by every read's end: each
    # `loop_read` takes at most one socket read (the event loop gets a turn in between),
    # and paho's parser completes the cut packets over the following calls.
    got: list[int] = []
    c = LeanClient(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                   fast_handler=lambda t, p, m: got.append(m))
    n = 3000
    stream = b"".join(publish_packet("pantau/s/d/telemetry", i % 65535 + 1, b"x" * (50 + i % 97),
                                     v5=True) for i in range(n))
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    broker.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, len(stream))
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, len(stream))
    sender = threading.Thread(target=broker.sendall, args=(stream,))
    sender.start()
    c._sock = ours  # as paho sets it once connected
    per_call: list[int] = []
    calls = 0
    try:
        while len(got) < n and calls < 10 * n:
            before = len(got)
            assert c.loop_read() == mqtt.MQTT_ERR_SUCCESS
            per_call.append(len(got) - before)
            calls += 1
    finally:
        sender.join(5)
        c._sock = None
        ours.close()
        broker.close()
    assert got == [i % 65535 + 1 for i in range(n)]  # all, in order, none twice
    most = 2 * 65536 // len(publish_packet("pantau/s/d/telemetry", 1, b"x" * 50, v5=True))
    assert max(per_call) <= most  # bounded: what was buffered plus one read
    assert len(stream) // 65536 <= calls
