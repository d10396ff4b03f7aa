"""A device reporting 100 times faster than its registry interval (issue 13), against the real
Mosquitto and InfluxDB with ``pantau run`` as its own process (its memory measured alone).

An air-quality station (``interval_s`` 300) sends a day of readings 3 s apart (28,800 messages
of 8 metrics: its whole 24-hour averaging window, flat out, stamped over the last 24 hours); a
river gauge (60 s) does the same with ``PANTAU_SLOW=1`` (144,000 messages). Before and after,
every other device of the shipped registry reports live (stamped with the sending time).

Stated bounds, asserted: every reading of every device is stored; the flood is counted for the
flooding device (``pantau_device_fast_readings_total``); Pantau's RSS after the flood is within
`RSS_BOUND` of before it, and its peak during it within `PEAK_BOUND`; the other devices'
publish-to-stored p99 after the flood is within 2x + 0.5 s of before it (the state the flood
left behind costs the others nothing). Figures are printed.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from devices.registry import default_registry_path, load_registry
from pantau.bench import _quantile
from pantau.bench.fleet_load import Device, device_specs, publish_fleet
from pantau.devstack import ADMIN_USER, InfluxDB1, Mosquitto
from tests.e2e.conftest import EnvFactory, PantauProcess, reached, scrape, wait_for
from tests.e2e.test_faults import _ready
from tests.e2e.test_hostile_size import Peak

MIB = 1024 * 1024
RSS_BOUND = 32 * MIB
PEAK_BOUND = 64 * MIB
REGISTRY = load_registry(default_registry_path())
FLOODERS = ("aq-kanigoro", "wl-brantas-kanigoro") if os.environ.get("PANTAU_SLOW") else \
    ("aq-kanigoro",)
DAY_S = 86400.0


def stored(influx: InfluxDB1, db: str, device: str) -> int:
    d = REGISTRY.device(device)
    assert d is not None
    rows = influx.rows(f'SELECT count("{d.metrics[0].name}") FROM "{d.kind}" '
                       f"WHERE device = '{device}'", db=db)
    return int(rows[0]["count"]) if rows else 0


async def live(broker: Mosquitto, env: dict[str, str], others: list[Device], rounds: int
               ) -> tuple[float, float]:
    """``rounds`` messages of every other device, 2 s apart, stamped when sent; (p50, p99)
    publish-to-stored of just these, from Pantau's histogram."""
    before = await scrape(env)
    user, pw = broker.credentials(ADMIN_USER)
    n = rounds * len(others)
    await asyncio.to_thread(publish_fleet, broker.host, broker.port, user, pw, others, n, 0,
                            len(others) / 2.0)
    key = "pantau_messages_acked_total"
    await wait_for(lambda: reached(env, key, before.get(key, 0) + n), within=60,
                   what="the live messages acknowledged")
    after = await scrape(env)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return _quantile(delta, 0.5), _quantile(delta, 0.99)


@pytest.mark.slow
async def test_a_device_flooding_at_100_times_its_interval_costs_the_others_nothing(
        pantau_env: EnvFactory, pantau_process: Any, mosquitto: Mosquitto, influx: InfluxDB1,
        influx_db: str) -> None:
    env = pantau_env(influx_db)
    p: PantauProcess = pantau_process(env)
    p.start()
    await _ready(p)
    assert p.proc is not None
    specs = {d.id: d for d in device_specs(REGISTRY)}
    # live: every other device the same number of times (equal cadences in the schedule)
    others = [Device(d.site, d.id, 1.0, d.values) for i, d in specs.items() if i not in FLOODERS]
    p50_a, p99_a = await live(mosquitto, env, others, 3)

    peak = Peak(p.proc.pid)
    rss_before = peak.proc.memory_info().rss
    peak.start()
    user, pw = mosquitto.credentials(ADMIN_USER)
    sent = {}
    t0 = time.monotonic()
    for k, name in enumerate(FLOODERS):
        d = specs[name]
        fast = Device(d.site, d.id, d.interval_s / 100, d.values)  # 100 times its cadence
        sent[name] = int(DAY_S / fast.interval_s)
        await asyncio.to_thread(publish_fleet, mosquitto.host, mosquitto.port, user, pw,
                                [fast], sent[name], k + 1, 0.0, DAY_S)
    total = sum(sent.values())
    await wait_for(lambda: all(stored(influx, influx_db, n) == m for n, m in sent.items()),
                   within=600, what="the flood stored")
    took = time.monotonic() - t0
    rss_after = peak.proc.memory_info().rss
    p50_c, p99_c = await live(mosquitto, env, others, 3)
    peak.halt.set()
    peak.join()

    now = await scrape(env)
    fast_counted = {n: now.get(f'pantau_device_fast_readings_total{{device="{n}"}}', 0)
                    for n in FLOODERS}
    print(f"\nflood: {total:,} messages of {', '.join(FLOODERS)} at 100x their interval, "
          f"stored in {took:.1f} s; Pantau RSS {rss_before / MIB:.0f} -> {rss_after / MIB:.0f} "
          f"MiB (peak {peak.peak / MIB:.0f}); the other {len(others)} devices' "
          f"publish-to-stored p50/p99 {p50_a * 1000:.0f}/{p99_a * 1000:.0f} ms before, "
          f"{p50_c * 1000:.0f}/{p99_c * 1000:.0f} ms after")
    for n, m in sent.items():
        assert fast_counted[n] >= m - 1, n  # every reading set but the first came too soon
    for d in others:
        assert stored(influx, influx_db, d.id) == 6, d.id
    assert rss_after - rss_before < RSS_BOUND
    assert peak.peak - rss_before < PEAK_BOUND
    assert p99_c <= 2 * p99_a + 0.5
    assert p.stop() == 0
