"""Quality flags: stuck, spike and gap on hand-made series; split invariance; state round trip."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import FLAG_OUT_OF_RANGE, TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.quality import FLAG_GAP, FLAG_SPIKE, FLAG_STUCK, Quality

MIN = 60_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "g", "kind": "k", "site": "s", "interval_s": 60,
                 "metrics": {"level_cm": {"unit": "cm"}, "rain_mm": {"unit": "mm"}}}],
})
TABLE = SeriesTable.from_registry(REGISTRY)
LEVEL, RAIN = TABLE.lookup["g"]["level_cm"], TABLE.lookup["g"]["rain_mm"]


def quality() -> Quality:
    return Quality(TABLE, max_rate={"level_cm": 1.0}, flatline={"level_cm": (4, 300.0)})


def flags(q: Quality, minutes: list[float], values: list[float], series: int = LEVEL
          ) -> list[int]:
    b = TelemetryBatch.from_arrays(np.array(minutes) * MIN, [series] * len(values), values)
    return [int(f) for f in q.step(b).batch.flags]


def test_stuck_needs_both_count_and_duration() -> None:
    f = flags(quality(), [0, 1, 2, 3, 4, 5, 6, 7, 8], [5, 7, 7, 7, 7, 7, 7, 8, 8])
    # run of 7 starts at minute 1; 4 readings at minute 4 but 300 s only at minute 6
    assert f == [0, 0, 0, 0, 0, 0, FLAG_STUCK, 0, 0]
    assert flags(quality(), list(range(10)), [0.0] * 10, RAIN) == [0] * 10


def test_spike_flags_the_jump_and_the_return() -> None:
    q = quality()
    f = flags(q, [0, 1, 2, 3], [100, 130, 100, 150])  # limit 60 cm per minute
    assert f == [0, 0, 0, 0]
    f = flags(q, [4, 5, 6], [150, 300, 150])
    assert f == [0, FLAG_SPIKE, FLAG_SPIKE]
    assert q.counts()["spike"] == 2


def test_gap_flags_first_reading_after_and_counts_missed_reports() -> None:
    q = quality()
    f = flags(q, [0, 1, 3, 8], [1, 2, 3, 4])
    assert f == [0, 0, 0, FLAG_GAP]  # 2 intervals is not a gap; 5 is, with 4 missed
    assert q.counts() == {"stuck": 0, "spike": 0, "gap": 1, "missed": 4}


def test_flags_combine_with_earlier_flags_and_skip_rejected_rows() -> None:
    b = TelemetryBatch.from_arrays([0, MIN, 2 * MIN], [LEVEL] * 3, [1.0, 500.0, 1.0])
    b = b.with_flags(np.array([False, True, False]), FLAG_OUT_OF_RANGE)
    out = quality().step(b).batch
    assert out.flags.tolist() == [0, FLAG_OUT_OF_RANGE | FLAG_SPIKE, FLAG_SPIKE]


streams = st.lists(st.tuples(st.sampled_from([LEVEL, RAIN]), st.sampled_from([1, 1, 1, 4]),
                             st.sampled_from([1.0, 1.0, 2.0, 200.0])), min_size=1, max_size=60)


def run(q: Quality, rows: list[tuple[int, int, float]], cuts: list[int]) -> list[int]:
    clock = {LEVEL: 0, RAIN: 0}
    ts = []
    for s, dt, _ in rows:
        clock[s] += dt * MIN
        ts.append(clock[s])
    b = TelemetryBatch.from_arrays(ts, [r[0] for r in rows], [r[2] for r in rows])
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    return [int(f) for lo, hi in pairwise(edges)
            for f in q.step(b.take(np.arange(lo, hi))).batch.flags]


@settings(max_examples=100, deadline=None)
@given(streams, st.lists(st.integers(0, 60), max_size=5))
def test_same_flags_in_one_batch_or_many(rows: list[tuple[int, int, float]],
                                         cuts: list[int]) -> None:
    a, b = quality(), quality()
    assert run(a, rows, []) == run(b, rows, cuts)
    assert a.counts() == b.counts()


@settings(max_examples=100, deadline=None)
@given(streams)
def test_each_series_once_per_batch_as_in_one_batch(rows: list[tuple[int, int, float]]) -> None:
    """Batches holding each series at most once (the usual case, a shortcut) against one batch
    of the whole stream: same flags, counts and state."""
    cuts, seen = [], set()
    for i, (s, _, _) in enumerate(rows):
        if s in seen:
            cuts.append(i)
            seen.clear()
        seen.add(s)
    a, b = quality(), quality()
    assert run(a, rows, []) == run(b, rows, cuts)
    assert a.counts() == b.counts()
    for k, v in a.state().items():
        np.testing.assert_array_equal(v, b.state()[k], err_msg=k)


@settings(max_examples=50, deadline=None)
@given(streams, streams)
def test_state_round_trip(first: list[tuple[int, int, float]],
                          second: list[tuple[int, int, float]]) -> None:
    a = quality()
    run(a, first, [])
    b = quality()
    b.restore({k: v.copy() for k, v in a.state().items()})
    late = [(s, dt + 1000, v) for s, dt, v in second]
    assert run(a, late, []) == run(b, late, [])
    assert a.counts() == b.counts()
