"""Putting the simulator on the air: MQTT publishers, pacing and the progress line.

- `DevicePublisher`: one paho client per device (client id ``sim-<id>``, username = device id,
  LWT ``offline`` retained on its status topic), all driven by one selector loop in the
  caller's thread, so 10,000 devices need 10,000 sockets but no threads. An ``offline`` event
  shuts the socket without DISCONNECT, so the *broker* publishes the LWT; ``online``
  reconnects and announces itself (retained).
- `MuxPublisher`: one connection publishes for every device (large fleets, benchmarks); its
  user needs write access to ``<prefix>/#``; ``offline`` is published on the device's behalf.

Both publish at QoS 1 and bound the unacknowledged messages (paho silently drops QoS 1
beyond 65,535 queued: DESIGN.md): `publish` blocks, pumping the network, while the bound is
reached. `run()` paces a `Simulator` against an injected clock; `catch_up()` replays a
simulator that starts in the past flat out until it reaches the wall clock, so the same
world (rivers, batteries, fridges) then goes on live without a step.
"""

from __future__ import annotations

import math
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.simulator.engine import Message, Simulator
from devices.simulator.scenarios import SimulatorError

MAX_UNACKED = 2000


class _Pump:
    """Clients driven by one selector; counts unacknowledged QoS 1 publishes."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.unacked = 0
        self.acked = 0
        self.clients: list[mqtt.Client] = []
        self.in_flight: dict[int, int] = {}  # id(client) -> its unacknowledged publishes
        self._misc_due = 0.0

    def _on_publish(self, client: mqtt.Client, *_: Any) -> None:
        self.unacked -= 1
        self.acked += 1
        self.in_flight[id(client)] -= 1

    def attach(self, c: mqtt.Client) -> None:
        c.on_publish = self._on_publish
        sock = c.socket()
        if sock is not None:
            self.sel.register(sock, selectors.EVENT_READ, c)

    def detach(self, c: mqtt.Client) -> None:
        sock = c.socket()
        if sock is not None and sock in self.sel.get_map():
            self.sel.unregister(sock)

    def pump(self, timeout: float = 0.0) -> None:
        for c in self.clients:
            if c.want_write():
                c.loop_write()
        for key, _ in self.sel.select(timeout):
            key.data.loop_read()
        now = time.monotonic()
        if now >= self._misc_due:  # keepalive PINGREQs, or the broker drops idle devices
            self._misc_due = now + 1.0
            for c in self.clients:
                c.loop_misc()

    def send(self, c: mqtt.Client, msg: Message) -> None:
        while self.unacked >= MAX_UNACKED:
            self.pump(0.05)
        info = c.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise SimulatorError(f"publish to {msg.topic!r} failed: {info.rc}")
        self.unacked += 1
        self.in_flight[id(c)] = self.in_flight.get(id(c), 0) + 1

    def close(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.unacked > 0 and time.monotonic() < deadline:
            self.pump(0.05)
        for c in self.clients:
            c.disconnect()
            c.loop_write()
        self.sel.close()


def _client(client_id: str, user: str, password: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    c.max_queued_messages_set(0)
    c.max_inflight_messages_set(MAX_UNACKED)
    return c


class MuxPublisher(_Pump):
    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        super().__init__()
        self.c = _client(f"sim-mux-{user}", user, password)
        self.c.connect(host, port, keepalive=60)
        self.clients.append(self.c)
        self.attach(self.c)

    def publish(self, msg: Message) -> None:
        self.send(self.c, msg)


class DevicePublisher(_Pump):
    def __init__(self, host: str, port: int, sim: Simulator,
                 passwords: Mapping[str, str]) -> None:
        super().__init__()
        self.by_id: dict[str, mqtt.Client] = {}
        missing = [d.id for d in sim.registry.devices if d.id not in passwords]
        if missing:
            raise SimulatorError(f"no password for {len(missing)} devices, e.g. {missing[0]}")
        self.host, self.port = host, port
        for d, status in zip(sim.registry.devices, sim._status, strict=True):
            c = _client(f"sim-{d.id}", d.id, passwords[d.id])
            c.will_set(status, b"offline", qos=1, retain=True)
            self.by_id[d.id] = c
            self.clients.append(c)
        self.live: set[str] = set()

    def publish(self, msg: Message) -> None:
        c = self.by_id[msg.device]
        if msg.kind == "offline":  # drop the link without DISCONNECT: the broker sends the LWT
            if msg.device in self.live:
                # what the device sent before is acknowledged first (a device that lost power
                # mid-publish would send it again after reboot; the count stays exact)
                deadline = time.monotonic() + 5.0
                while self.in_flight.get(id(c)) and time.monotonic() < deadline:
                    self.pump(0.01)
                self.detach(c)
                sock = c.socket()
                if isinstance(sock, socket.socket):
                    sock.shutdown(socket.SHUT_RDWR)
                self.live.discard(msg.device)
            return
        if msg.device not in self.live:
            if msg.kind != "online":
                return
            c.connect(self.host, self.port, keepalive=60)
            self.attach(c)
            self.live.add(msg.device)
        self.send(c, msg)


Publisher = MuxPublisher | DevicePublisher


def run(sim: Simulator, publish: Callable[[Message], None] | None, *, pump: Callable[[], None]
        = lambda: None, speed: float = 1.0, flat_out: bool = False, duration_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
        report: Callable[[str], None] = print, every_s: float | None = None) -> dict[str, int]:
    """Advance ``sim`` in step with ``clock`` (``speed`` simulated seconds per second, or as
    fast as ``publish`` returns when ``flat_out``) for ``duration_s`` simulated seconds (0:
    until interrupted), handing every message to ``publish``; report a progress line every
    ``every_s`` seconds (default: 5 s when faster than real time, a minute when live, where a
    line every 5 s would say "0/s" over and over). Returns the simulator's counts."""
    if every_s is None:
        every_s = 5.0 if flat_out or speed > 1 else 60.0
    start_sim, start, last = sim.now_s, clock(), clock()
    sent = 0
    end = start_sim + duration_s if duration_s else float("inf")
    while sim.now_s + sim.tick_s <= end:
        target = sim.now_s + sim.tick_s if flat_out else start_sim + (clock() - start) * speed
        for msg in sim.advance(min(target, end)):
            if publish is not None:
                publish(msg)
            sent += 1
        pump()
        now = clock()
        if now - last >= every_s:
            last = now
            c = sim.counts
            report(f"simulate: {sent} messages, {sent / max(now - start, 1e-9):.0f}/s, "
                   f"{len(sim.registry.devices)} devices ({int(sim.online.sum())} online), "
                   f"malformed {c['malformed']}, dropped {c['dropped']}, "
                   f"sim time +{(sim.now_s - start_sim) / 3600:.2f} h")
        if not flat_out and target < sim.now_s + sim.tick_s:
            sleep(min(0.05, sim.tick_s / max(speed, 1e-9)))
    return dict(sim.counts)


def catch_up(sim: Simulator, publish: Callable[[Message], None] | None, *,
             pump: Callable[[], None] = lambda: None, wall: Callable[[], float] = time.time,
             report: Callable[[str], None] = print, every_s: float = 5.0) -> int:
    """Replay ``sim`` flat out until its clock is within one tick of ``wall()`` (epoch
    seconds), in passes: the replay itself takes time, which the next pass replays (it stops
    early if a pass could not shrink the gap: publishing slower than real time). Returns the
    passes made (0 when it was not behind). Then `run` at speed 1 continues the same world
    live: no fresh start, so no jump in any level."""
    passes, last = 0, math.inf
    while sim.tick_s <= (behind := wall() - sim.now_s) < last:
        run(sim, publish, pump=pump, flat_out=True, duration_s=behind, report=report,
            every_s=every_s)
        passes, last = passes + 1, behind
    return passes
