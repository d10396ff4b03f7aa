"""``pantau bench --alerts --latency`` with a handful of crossings against the session's
Mosquitto and InfluxDB, its own Alertmanager and ``pantau run``: every crossing is accepted by
Alertmanager, notified and resolved at the webhook, and the report counts each of them (the
figures are printed, not asserted). ``PANTAU_SLOW=1``: 60 crossings instead of 6."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pantau.bench.alert_latency import measure
from pantau.devstack import InfluxDB1, Mosquitto

pytestmark = pytest.mark.slow


async def test_every_crossing_reaches_alertmanager_and_the_webhook(
        tmp_path: Path, mosquitto: Mosquitto, influx: InfluxDB1, influx_db: str) -> None:
    n = 60 if os.environ.get("PANTAU_SLOW") else 6
    report = await measure(mosquitto, influx, influx_db, tmp_path, samples=n, gauges=3)
    print("\n".join(report.lines()))
    assert len(report.samples) == n
    assert report.arrived == n, [s for s in report.samples if not s.complete]
    assert len({s.device for s in report.samples}) == 3
    for s in report.samples:  # each step after the one it answers
        assert s.published <= s.fell <= s.resolved and s.published <= s.notified
    lines = report.lines()
    assert sum(f"(n={n})" in line for line in lines) == 3, lines
    assert any("group_wait 1 s" in line for line in lines), lines
