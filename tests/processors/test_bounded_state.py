"""O(batch) amortised, proven without a clock: a river gauge and a PM2.5 sensor each reporting
at 100 Hz (6,000 times their interval) for 1 million readings (PANTAU_SLOW=1; 500,000 in the
default run, 50 times the reference) leave every stateful step (the default chain plus
windows) with state no bigger than after 10,000, and the process's traced memory no bigger."""

from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import pytest

from core.batch import TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors import ProcessorContext, build_chain
from processors.domain.chain import Chain

REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "x", "kind": "k", "site": "s", "interval_s": 60,
                 "params": {"waspada_cm": 100, "siaga_cm": 200, "awas_cm": 300},
                 "metrics": {"level_cm": {"unit": "cm"}, "pm25": {"unit": "ug/m3"}}}],
})
TABLE = SeriesTable.from_registry(REGISTRY)
CHAIN = ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "windows",
         "tiers")
BATCH = 10_000
T0 = 1_800_000_000 * 10**9
READINGS = 1_000_000 if os.environ.get("PANTAU_SLOW") == "1" else 500_000


def feed(chain: Chain, start: int, n: int) -> None:
    """Readings ``start .. start + n`` of both series at 100 Hz, in batches of `BATCH`."""
    for k in range(start, start + n, BATCH):
        i = np.arange(k, k + BATCH)
        ts = np.repeat(T0 + i * 10_000_000, 2)
        series = np.tile(np.arange(2, dtype=np.int32), BATCH)
        value = 150 + 50 * np.sin(ts / 1e11) + (i.repeat(2) % 7)
        chain.run(TelemetryBatch.from_arrays(ts, series, value))


def state_bytes(chain: Chain) -> int:
    return sum(a.nbytes for a in chain.state().values())


@pytest.mark.slow
def test_a_million_readings_at_100_hz_leave_the_state_as_big_as_ten_thousand() -> None:
    chain = build_chain(CHAIN, ProcessorContext(TABLE))
    feed(chain, 0, BATCH)
    tracemalloc.start()
    try:
        gc.collect()
        small, traced = state_bytes(chain), tracemalloc.get_traced_memory()[0]
        feed(chain, BATCH, READINGS - BATCH)
        gc.collect()
        big, traced_big = state_bytes(chain), tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert big <= small, f"state grew from {small} to {big} bytes"
    assert traced_big - traced < 64 * 1024, f"memory grew by {traced_big - traced} bytes"
