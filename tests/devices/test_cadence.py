"""CadenceWatch: a device reporting much faster than its interval is counted per device and
logged once a minute; on-time, jittery, redelivered and late readings are not counted."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.stored import Stored
from devices.cadence import CadenceWatch
from devices.registry import parse_registry
from devices.series import SeriesTable

S = 1_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": d, "kind": "k", "site": "s", "interval_s": 60,
                 "metrics": {"a": {"unit": "x"}, "b": {"unit": "x"}}} for d in ("ok", "fast")],
})
TABLE = SeriesTable.from_registry(REGISTRY)


def stored(ts: list[float], series: list[int], now_s: float) -> Stored:
    b = TelemetryBatch.from_arrays((np.asarray(ts) * S).astype(np.int64), series,
                                   np.zeros(len(ts)), origin=np.zeros(len(ts)))
    return Stored.of(b, [0], int(now_s * S))


def test_fast_device_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics()
    w = CadenceWatch(TABLE, m)
    ok_a, ok_b = TABLE.lookup["ok"]["a"], TABLE.lookup["ok"]["b"]
    fast = TABLE.lookup["fast"]["a"]
    # "ok": every 55-65 s, both metrics per message (one reading set); a redelivery of t=55
    # and (in a later batch) a late reading are not fast. "fast": every second.
    ts = [0, 0, 55, 55, 120, 120, 55, 185, 185, *range(30)]
    series = [ok_a, ok_b] * 3 + [ok_a] + [ok_a, ok_b] + [fast] * 30
    with caplog.at_level(logging.WARNING, logger="pantau.cadence"):
        w.on_stored(stored(ts, series, 1000))
        w.on_stored(stored([*range(30, 60), 100], [fast] * 30 + [ok_a], 1010))  # same minute
        w.on_stored(stored(list(range(60, 62)), [fast] * 2, 1061))
    assert m.value("pantau_device_fast_readings_total", device="fast") == 29 + 30 + 2
    assert w.fast.tolist() == [0, 61]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "fast (29, interval 60 s)" in lines[0]
    assert "fast (32, interval 60 s)" in lines[1] and "ok" not in lines[1].split(":")[1]
    assert "pantau_device_fast_readings_total" in m.render()


def test_bad_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        CadenceWatch(TABLE, Metrics(), fraction=0)
