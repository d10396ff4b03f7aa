"""The mixed fleet's publishers (`pantau.bench.fleet`): each device at its own cadence.

A publisher process owns some devices and sends their messages in time order. Message ``k``
of device ``d`` is at ``offset[d] + k * interval_s[d]`` of the fleet's simulated span (offsets
spread the devices over their interval); stamped ``start + that`` (``start``: the span ends just
before now) or, paced for latency, with the sending time. Payloads are JSON reading sets of the
device's metrics: what the simulator's normal day publishes for the device (for a clone, for
its original), 64 consecutive reports pre-rendered per original and repeated, ~60-200 bytes.
A normal day, because the bench measures the city's ordinary load: payloads at the bottom of
each range would be a battery at 1.2 V, freezing fridges and mains off on every device, and
the run would measure one alert per device instead.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.catalogue import load_rivers
from devices.registry import Registry
from devices.simulator import Simulator
from pantau.bench.load import CHUNK, WINDOW, RawLink, _utf8, publish_packet

STEPS = 64
CLONE = re.compile(r"-c\d{4}$")  # `devices.simulator.fleet.grow`'s clone ids: original-cNNNN
DAY_START_S = 1_780_272_000.0  # 2026-06-01 00:00 UTC (07:00 WIB), dry season
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Device:
    site: str
    id: str
    interval_s: float
    values: tuple[str, ...]   # STEPS "values" objects of its kind, rendered (shared per kind)


def device_specs(registry: Registry) -> list[Device]:
    """What a publisher needs of each device (picklable, the renderings shared per original)."""
    originals = [d for d in registry.devices if not CLONE.search(d.id)]
    rendered = _normal_day(Registry(registry.sites, tuple(originals), source=registry.source))
    return [Device(d.site, d.id, d.interval_s, rendered[CLONE.sub("", d.id)])
            for d in registry.devices]


def _normal_day(registry: Registry) -> dict[str, tuple[str, ...]]:
    """`STEPS` consecutive "values" objects per device, as the normal-day simulator publishes
    them (a fixed seed and start, so every run sends the same)."""
    rivers = load_rivers(registry.source, registry) if registry.source else {}
    sim = Simulator(registry, scenario_name="normal", seed=7, start_s=DAY_START_S,
                    rivers=rivers, tick_s=min(d.interval_s for d in registry.devices))
    need = {d.id: d for d in registry.devices}
    got: dict[str, list[str]] = {d: [] for d in need}
    span = (STEPS + 2) * max(d.interval_s for d in registry.devices)
    for m in sim.advance(DAY_START_S + span):
        if m.kind == "telemetry" and len(got[m.device]) < STEPS:
            values = json.loads(m.payload)["values"]
            got[m.device].append(json.dumps(values, separators=(",", ":")))
    short = [d for d, v in got.items() if len(v) < STEPS]
    if short:
        raise RuntimeError(f"the normal-day simulator sent fewer than {STEPS} reports for "
                           f"{short[:5]}")
    return {d: tuple(v) for d, v in got.items()}


def schedule_span_s(devices: list[Device], n: int) -> float:
    """Seconds of the devices' cadence that ``n`` messages cover."""
    return n / sum(1.0 / d.interval_s for d in devices)


def _schedule(devices: list[Device], n: int, span_s: float) -> tuple[I64, I64, I64]:
    """(device, message number, time in µs) of the first ``n`` messages, in time order."""
    iv = np.array([d.interval_s for d in devices])
    offset = (np.arange(len(devices)) * 0.6180339887 % 1.0) * iv
    per = np.ceil(span_s * 1.1 / iv).astype(np.int64) + 2
    dev = np.repeat(np.arange(len(devices)), per)
    k = np.arange(len(dev)) - np.repeat(np.cumsum(per) - per, per)
    t_us = np.round((offset[dev] + k * iv[dev]) * 1e6).astype(np.int64)
    order = np.argsort(t_us, kind="stable")[:n]
    return dev[order], k[order], t_us[order]


def publish_fleet(host: str, port: int, user: str, password: str, devices: list[Device],
                  n: int, index: int, rate: float = 0.0, span_s: float = 0.0,
                  allowed: Any = None, share: float = 1.0) -> dict[str, float]:
    """Publish ``n`` QoS 1 messages of ``devices`` (owned by this publisher alone) in time order
    at ``rate`` messages/s (0: flat out), stamped at their cadence over ``span_s`` seconds
    ending now, or with the sending time when ``span_s`` is 0. The raw-socket MQTT 3.1.1
    client of `pantau.bench.load.publish` (pipelined, at most `WINDOW` unacknowledged).

    ``allowed`` (a shared ``multiprocessing.Value``, set by the caller from Pantau's acks):
    how many messages all publishers together may have sent so far, of which this one sends
    its ``share``. Flat out and unbounded, the publishers outrun Pantau by more than the
    broker queues for it (``max_queued_messages``), and the broker drops the rest."""
    if n <= 0:
        return {"sent": 0, "seconds": 0.0}
    dev, k, t_us = _schedule(devices, n, span_s or schedule_span_s(devices, n))
    start_us = time.time_ns() // 1000 - int(t_us[-1]) - 1_000_000
    link = RawLink(host, port, user, password, f"bench-fleet-{index}-{time.time_ns()}")
    topics = [_utf8(f"pantau/{d.site}/{d.id}/telemetry") for d in devices]
    dev_l, k_l, t_l = dev.tolist(), (k % STEPS).tolist(), t_us.tolist()
    i, last_us = 0, 0
    t0 = time.perf_counter()
    while i < n or link.acked < n:
        due = n if not rate else min(n, int((time.perf_counter() - t0) * rate) + 1)
        if allowed is not None:
            due = min(due, int(allowed.value * share))
        if i < due and i - link.acked < WINDOW:
            chunk = []
            for _ in range(min(CHUNK, due - i, WINDOW - (i - link.acked))):
                d = dev_l[i]
                if span_s:
                    ts_us = start_us + t_l[i]
                else:
                    ts_us = last_us = max(last_us + 1, time.time_ns() // 1000)
                body = f'{{"ts":{ts_us},"values":{devices[d].values[k_l[i]]}}}'.encode()
                chunk.append(publish_packet(topics[d], i, body))
                i += 1
            link.send(chunk)
        if i >= due and i < n and link.acked >= i:
            time.sleep(0.05)  # held back by ``allowed``: nothing to read either
        link.read_acks(0.0 if i < due and i - link.acked < WINDOW else 0.001 if i < n else 1.0)
    seconds = time.perf_counter() - t0
    link.close()
    return {"sent": n, "seconds": seconds}
