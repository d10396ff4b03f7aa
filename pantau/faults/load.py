"""The fault suite's devices: QoS 1 publishers that survive the broker's faults and remember,
message by message, what the broker acknowledged and when.

Each `publish` runs in its own process (``multiprocessing`` spawn), like `pantau.bench.load`,
but behaves like a field device with a persistent outbox: when the connection breaks (broker
killed, frozen, restarted) it reconnects and resends every message the broker has not
acknowledged (a resend of one that did arrive is a duplicate the pipeline must absorb).
Message ``i`` goes to device ``i % len(devices)`` with a device timestamp taken from the wall
clock when first sent (µs, strictly increasing within a publisher) and values that follow from
``i``; every ``bad_every``-th message carries a humidity that is not a number, which Pantau
must dead-letter (`not_a_number`) while storing its temperature.
"""

from __future__ import annotations

import contextlib
import select
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from devices import topics
from pantau.bench.load import _packet, _utf8, connect_raw

WINDOW = 5000  # unacknowledged publishes per connection (well under 65,535 message ids)
CHUNK = 200
SITE = "faults"
BAD_METRIC, BAD_REASON = "humidity_pct", "not_a_number"


@overload
def temperature(i: int) -> float: ...
@overload
def temperature(i: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...
def temperature(i: Any) -> Any:
    """The temperature message ``i`` carries (multiples of 1/64: exact in binary and in text)."""
    return 20 + i % 1024 / 64


@overload
def humidity(i: int) -> float: ...
@overload
def humidity(i: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]: ...
def humidity(i: Any) -> Any:
    return 40 + i % 50 / 2


def body(i: int, ts_us: int, bad: bool) -> bytes:
    """Message ``i``'s JSON payload (formatted directly: the publisher must outrun Pantau)."""
    hum = '"wet"' if bad else repr(humidity(i))
    return (f'{{"ts":{ts_us},"values":{{"temperature_c":{temperature(i)!r},'
            f'"{BAD_METRIC}":{hum}}}}}').encode()


@dataclass(frozen=True, slots=True)
class Plan:
    """What one publisher process sends: ``n`` messages over ``devices`` (ids, this
    publisher's alone) at ``rate`` per second (0: flat out), giving up on unacknowledged
    messages ``give_up_s`` after its last new message."""

    host: str
    port: int
    user: str
    password: str
    devices: tuple[str, ...]
    n: int
    rate: float = 0.0
    bad_every: int = 0
    give_up_s: float = 120.0
    name: str = "fault-pub"


@dataclass(frozen=True, slots=True)
class Sent:
    """Per message: device (index into the plan's devices), device timestamp (µs), whether
    it is a bad one, and when the broker acknowledged it (wall clock s; NaN: never)."""

    device: npt.NDArray[np.int32]
    ts_us: npt.NDArray[np.int64]
    bad: npt.NDArray[np.bool_]
    acked_at: npt.NDArray[np.float64]
    reconnects: int


class _Conn:
    def __init__(self, plan: Plan, index: int) -> None:
        self.sock = connect_raw(plan.host, plan.port, plan.user, plan.password,
                                f"{plan.name}-{index}-{time.time_ns()}", keepalive_s=0,
                                timeout=5)  # no keepalive
        self.pending = b""
        self.inflight: dict[int, int] = {}  # mid -> message index

    def acks(self, wait: float) -> list[int]:
        """Message indices acknowledged within ``wait`` seconds; ConnectionError when closed."""
        if not select.select([self.sock], [], [], wait)[0]:
            return []
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("broker closed the connection")
        data = self.pending + data
        whole = len(data) - len(data) % 4  # PUBACK: 0x40 0x02 mid(2)
        self.pending = data[whole:]
        mids = struct.unpack(f"!{whole // 4}I", data[:whole])
        return [i for m in mids if (i := self.inflight.pop(m & 0xFFFF, -1)) >= 0]


def publish(plan: Plan, index: int) -> Sent:
    """Send the plan's messages; return what happened to each (see `Sent`)."""
    n = plan.n
    topic = [_utf8(topics.device_topics("pantau", SITE, d)[0]) for d in plan.devices]
    dev = (np.arange(n) % len(plan.devices)).astype(np.int32)
    bad = (np.arange(n) % plan.bad_every == plan.bad_every - 1) if plan.bad_every \
        else np.zeros(n, bool)
    ts = np.zeros(n, np.int64)
    acked = np.full(n, np.nan)
    resend: deque[int] = deque()
    nxt, done, last_us, reconnects = 0, 0, 0, 0
    conn: _Conn | None = None
    t0 = time.perf_counter()
    deadline = float("inf")
    while done < n and time.perf_counter() < deadline:
        try:
            if conn is None:
                conn = _Conn(plan, index)
            due = n if not plan.rate else min(n, int((time.perf_counter() - t0) * plan.rate) + 1)
            room = WINDOW - len(conn.inflight)
            batch: list[int] = []
            while resend and len(batch) < min(room, CHUNK):
                batch.append(resend.popleft())
            while nxt < due and len(batch) < min(room, CHUNK):
                last_us = ts[nxt] = max(last_us + 1, time.time_ns() // 1000)
                batch.append(nxt)
                nxt += 1
                if nxt == n:
                    deadline = time.perf_counter() + plan.give_up_s
            if batch:
                packets = []
                for i in batch:
                    mid = i % 65535 + 1
                    if mid in conn.inflight:  # an old resend holds this id: send it later
                        resend.append(i)
                        continue
                    conn.inflight[mid] = i
                    packets.append(_packet(0x32, topic[dev[i]] + struct.pack("!H", mid)
                                           + body(i, int(ts[i]), bool(bad[i]))))
                conn.sock.sendall(b"".join(packets))
            busy = (nxt < due or resend) and len(conn.inflight) < WINDOW
            for i in conn.acks(0.0 if busy else 0.005):
                if np.isnan(acked[i]):
                    acked[i] = time.time()
                    done += 1
        except OSError:  # refused, reset, closed: a device reconnects and resends
            if conn is not None:
                resend.extend(sorted(conn.inflight.values()))
                conn.sock.close()
                conn = None
                reconnects += 1
            time.sleep(0.2)
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.sock.sendall(b"\xe0\x00")  # DISCONNECT
        conn.sock.close()
    return Sent(dev, ts, bad, acked, reconnects)
