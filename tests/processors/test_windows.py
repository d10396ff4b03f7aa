"""Rolling windows: equal to a naive per-series reference on random data (the window's start on
its bucket grid), however the readings are split into batches, also with thousands of readings
per bucket; on the grid exactly (t - w, t]; late rows ignored; state() / restore() continues
identically; the state's size does not grow with the readings."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from core.reasons import Reason
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.domain.derived import Output
from processors.windows import Windows, window_label

S = 1_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": f"d{i}", "kind": "k", "site": "s",
                 "metrics": {"a": {"unit": "x"}, "b": {"unit": "x"}}} for i in range(2)],
})
TABLE = SeriesTable.from_registry(REGISTRY)

# (series, seconds since that series' previous reading, value) in arrival order.
readings = st.lists(st.tuples(st.integers(0, len(TABLE) - 1), st.integers(1, 400),
                              st.floats(-1e3, 1e3, allow_nan=False)), min_size=1, max_size=80)


def make_batch(rows: list[tuple[int, int, float]]) -> TelemetryBatch:
    clock = dict.fromkeys(range(len(TABLE)), 1_700_000_000 * S)
    ts = []
    for s, dt, _ in rows:
        clock[s] += dt * S
        ts.append(clock[s])
    return TelemetryBatch.from_arrays(ts, [r[0] for r in rows], [r[2] for r in rows])


def collect(outputs: list[Output]) -> dict[str, dict[tuple[int, int], float]]:
    got: dict[str, dict[tuple[int, int], float]] = {}
    for out in outputs:
        for d in out.derived:
            got.setdefault(d.name, {}).update(
                zip(zip(d.source.tolist(), d.ts_ns.tolist(), strict=True), d.value.tolist(),
                    strict=True))
    return got


def naive(b: TelemetryBatch, width_s: int, buckets: int = 30
          ) -> dict[str, dict[tuple[int, int], float]]:
    """The definition, reading by reading: (T - w, t] with T = t rounded up to w / buckets."""
    out: dict[str, dict[tuple[int, int], float]] = {}
    g = width_s * S // buckets
    for i in range(len(b)):
        s, t = int(b.series[i]), int(b.ts_ns[i])
        top = -(-t // g) * g
        m = (b.series == s) & (b.ts_ns > top - buckets * g) & (b.ts_ns <= t)
        lab = window_label(width_s)
        for stat, v in (("mean", b.value[m].mean()), ("min", b.value[m].min()),
                        ("max", b.value[m].max()), ("count", float(m.sum())),
                        ("last", b.value[i])):
            out.setdefault(f"{stat}_{lab}", {})[(s, t)] = float(v)
    return out


def windows() -> Windows:
    return Windows(TABLE, windows_s=(60, 600), stats=("mean", "min", "max", "count", "last"))


@settings(max_examples=150, deadline=None)
@given(readings, st.lists(st.integers(0, 80), max_size=6))
def test_windows_equal_naive_reference_in_any_split(rows: list[tuple[int, int, float]],
                                                    cuts: list[int]) -> None:
    b = make_batch(rows)
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    w = windows()
    got = collect([w.step(b.take(np.arange(lo, hi))) for lo, hi in pairwise(edges)])
    check(got, {**naive(b, 60), **naive(b, 600)})


@settings(max_examples=50, deadline=None)
@given(readings, st.integers(0, 80))
def test_state_round_trip_continues_identically(rows: list[tuple[int, int, float]],
                                                cut: int) -> None:
    b = make_batch(rows)
    cut %= len(b) + 1
    first, second = b.take(np.arange(cut)), b.take(np.arange(cut, len(b)))
    a = windows()
    a.step(first)
    restored = windows()
    restored.restore({k: v.copy() for k, v in a.state().items()})
    assert collect([a.step(second)]) == collect([restored.step(second)])


def test_late_rejected_and_redelivered_rows_are_ignored() -> None:
    w = Windows(TABLE, windows_s=(60,), stats=("mean",))
    b = TelemetryBatch.from_arrays([10 * S, 20 * S, 30 * S], [0, 0, 0], [1.0, 100.0, 3.0])
    out = w.step(b.with_status(np.array([False, True, False]), Reason.OUT_OF_RANGE))
    assert out.by_name()["mean_1m"].value.tolist() == [1.0, 2.0]
    again = w.step(TelemetryBatch.from_arrays([30 * S, 25 * S], [0, 0], [7.0, 7.0]))
    assert again.derived == ()
    assert again.batch.value.tolist() == [7.0, 7.0]


def test_metric_filter_labels_and_bad_config() -> None:
    w = Windows(TABLE, windows_s=(45, 300, 7200), stats=("max",), metrics={"b"})
    out = w.step(TelemetryBatch.from_arrays([S, S], [TABLE.lookup["d0"]["a"],
                                                     TABLE.lookup["d0"]["b"]], [1.0, 2.0]))
    assert [d.name for d in out.derived] == ["max_45s", "max_5m", "max_2h"]
    assert out.derived[0].metric_names(TABLE) == ["b_max_45s"]
    with pytest.raises(ValueError, match="stats"):
        Windows(TABLE, stats=("median",))


def test_timestamps_too_wide_for_one_key_take_the_lexsort_path() -> None:
    # Two series whose readings span ~3e18 ns: (segment, time) no longer fits one int64 key.
    w = Windows(TABLE, windows_s=(3_600_000_000,), stats=("mean", "count"))
    ts = [-1_500_000_000 * S, 0, 1_500_000_000 * S, 1_500_000_000 * S]
    out = w.step(TelemetryBatch.from_arrays(ts, [0, 0, 0, 1], [1.0, 2.0, 3.0, 9.0]))
    assert out.by_name()["mean_1000000h"].value.tolist() == [1.0, 1.5, 2.0, 9.0]
    assert out.by_name()["count_1000000h"].value.tolist() == [1.0, 2.0, 3.0, 1.0]


def check(got: dict[str, dict[tuple[int, int], float]],
          want: dict[str, dict[tuple[int, int], float]]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].keys() == want[name].keys()
        np.testing.assert_allclose([got[name][k] for k in want[name]], list(want[name].values()),
                                   rtol=1e-9, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("cuts", [[], [1, 7, 3000], [2500, 2501]])
def test_thousands_of_readings_per_bucket_equal_the_definition(cuts: list[int]) -> None:
    # one series at ~20 Hz off any grid (hundreds per 20 s bucket), another every 37 s
    rng = np.random.default_rng(3)
    fast = 1_700_000_000 * S + np.cumsum(rng.integers(1, 100_000_000, 4000))
    slow = 1_700_000_000 * S + np.arange(1, 12) * 37 * S
    b = TelemetryBatch.from_arrays(np.r_[fast, slow], np.r_[[0] * 4000, [3] * 11],
                                   rng.uniform(-50, 50, 4011))
    edges = [0, *cuts, len(b)]
    w = windows()
    got = collect([w.step(b.take(np.arange(lo, hi))) for lo, hi in pairwise(edges)])
    check(got, {**naive(b, 60), **naive(b, 600)})


def test_on_the_grid_the_window_is_exactly_t_minus_w() -> None:
    w = Windows(TABLE, windows_s=(60,), stats=("mean", "count"))
    ts = np.arange(1, 20) * 10 * S  # every 10 s: on the 2 s grid of a 60 s window
    out = w.step(TelemetryBatch.from_arrays(ts, [0] * 19, np.arange(19.0))).by_name()
    assert out["count_1m"].value.tolist() == [1, 2, 3, 4, 5] + [6] * 14  # (t - 60 s, t]
    assert out["mean_1m"].value[-1] == np.mean(np.arange(13.0, 19.0))


def test_state_is_bounded_by_the_window_not_the_readings() -> None:
    w = windows()
    sizes = []
    t0 = 1_700_000_000 * S
    for k in range(5):  # 100 Hz for 10 s per round: 1,000 readings
        ts = t0 + (k * 1000 + np.arange(1, 1001)) * 10_000_000
        w.step(TelemetryBatch.from_arrays(ts, [0] * 1000, np.sin(ts / 1e9)))
        sizes.append(sum(a.nbytes for a in w.state().values()))
    assert len(set(sizes)) == 1
