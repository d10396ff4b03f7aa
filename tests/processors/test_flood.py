"""Flood stages walked up and down with hysteresis and minimum duration; level from distance;
rate of rise; batch-split invariance and state round trip."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.domain.derived import Output
from processors.flood import FloodStage

MIN = 60_000_000_000
GAUGE = {"waspada_cm": 100, "siaga_cm": 200, "awas_cm": 300, "hysteresis_cm": 10,
         "min_duration_s": 600}
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [
        {"id": "wl-1", "kind": "river_gauge", "site": "s", "params": GAUGE,
         "metrics": {"level_cm": {"unit": "cm"}, "battery_v": {"unit": "V"}}},
        {"id": "wl-2", "kind": "river_gauge", "site": "s",
         "params": {**GAUGE, "reference_height_cm": 500, "min_duration_s": 0},
         "metrics": {"distance_cm": {"unit": "cm"}}},
        {"id": "wl-3", "kind": "river_gauge", "site": "s", "metrics": {"level_cm": {"unit": "cm"}}},
    ],
})
TABLE = SeriesTable.from_registry(REGISTRY)
L1, B1 = TABLE.lookup["wl-1"]["level_cm"], TABLE.lookup["wl-1"]["battery_v"]
D2, L3 = TABLE.lookup["wl-2"]["distance_cm"], TABLE.lookup["wl-3"]["level_cm"]

# (minute, level, expected stage): thresholds 100/200/300, hysteresis 10, 10 minutes to enter.
WALK = [
    (0, 50, 0), (1, 105, 0), (5, 110, 0), (10, 120, 0), (11, 120, 1),  # 10 min above 100
    (12, 95, 1), (13, 90, 1), (14, 89.9, 0),  # hysteresis: leave only below 90
    (15, 150, 0), (20, 99, 0), (25, 150, 0), (34, 150, 0), (35, 150, 1),  # dip restarts clock
    (36, 250, 1), (46, 250, 2),  # siaga after 10 minutes above 200
    (47, 350, 2), (50, 299, 2), (51, 310, 2), (60, 400, 2), (61, 320, 3),  # awas clock from 51
    (62, 295, 3), (63, 289, 2), (64, 195, 2), (65, 189, 1), (66, 91, 1), (67, 89, 0),
]


def stage_of(out: Output) -> list[float]:
    return [float(x) for x in out.by_name()["flood_stage"].value]


def test_gauge_walks_through_every_stage_one_reading_per_batch() -> None:
    f = FloodStage(TABLE)
    got = [stage_of(f.step(TelemetryBatch.from_arrays([m * MIN], [L1], [v])))[0]
           for m, v, _ in WALK]
    assert got == [float(e) for _, _, e in WALK]


def test_gauge_walk_in_one_batch_with_other_series_interleaved() -> None:
    ts = [m * MIN for m, _, _ in WALK]
    b = TelemetryBatch.from_arrays(ts + ts, [L1] * len(WALK) + [B1] * len(WALK),
                                   [v for _, v, _ in WALK] + [12.0] * len(WALK))
    order = np.random.default_rng(1).permutation(len(b))
    out = FloodStage(TABLE).step(b.take(order))
    assert stage_of(out) == [float(e) for _, _, e in WALK]


@pytest.mark.parametrize(("distance", "level", "stage"), [
    pytest.param(450.0, 50.0, 0, id="normal"),
    pytest.param(400.0, 100.0, 1, id="at-waspada"),
    pytest.param(300.5, 199.5, 1, id="below-siaga"),
    pytest.param(199.0, 301.0, 3, id="awas"),
])
def test_ultrasonic_distance_becomes_level(distance: float, level: float, stage: int) -> None:
    out = FloodStage(TABLE).step(TelemetryBatch.from_arrays([0], [D2], [distance])).by_name()
    assert out["level_cm"].value.tolist() == [level]
    assert out["level_cm"].metric_names(TABLE) == ["level_cm"]
    assert out["flood_stage"].value.tolist() == [stage]


def test_gauge_without_thresholds_gets_level_rise_but_no_stage() -> None:
    out = FloodStage(TABLE).step(TelemetryBatch.from_arrays([0], [L3], [10.0])).by_name()
    assert len(out["flood_stage"]) == 0
    assert len(out["level_rise_cm_h"]) == 1


def test_rate_of_rise_is_least_squares_over_the_window() -> None:
    minutes = np.arange(0, 40, 2)
    level = 100 + minutes * 1.5 + np.where(minutes == 4, 6.0, 0.0)  # 90 cm/h, one bump
    out = FloodStage(TABLE).step(TelemetryBatch.from_arrays(minutes * MIN, [L1] * 20, level))
    rise = out.by_name()["level_rise_cm_h"].value
    assert np.isnan(rise[:4]).all()  # fewer than 7.5 minutes covered
    assert rise[-1] == pytest.approx(90.0)  # the bump left the 30-minute window
    assert not np.isnan(rise[4])
    assert rise[12] != pytest.approx(90.0)  # the bump at minute 4 still weighs on minute 24


def test_thresholds_must_rise() -> None:
    bad = parse_registry({"sites": [{"id": "s", "lat": 0, "lon": 0}], "devices": [
        {"id": "g", "kind": "k", "site": "s", "metrics": {"level_cm": {"unit": "cm"}},
         "params": {"waspada_cm": 300, "siaga_cm": 200, "awas_cm": 400}}]})
    with pytest.raises(ValueError, match="device 'g': flood thresholds must rise"):
        FloodStage(SeriesTable.from_registry(bad))


walks = st.lists(st.tuples(st.sampled_from([L1, D2, L3]), st.integers(1, 8),
                           st.floats(0, 450)), min_size=1, max_size=80)


def run(rows: list[tuple[int, int, float]], cuts: list[int], f: FloodStage | None = None
        ) -> tuple[dict[tuple[str, int, int], float], FloodStage]:
    clock = {L1: 0, D2: 0, L3: 0}
    ts = []
    for s, dt, _ in rows:
        clock[s] += dt * MIN
        ts.append(clock[s])
    b = TelemetryBatch.from_arrays(ts, [r[0] for r in rows], [r[2] for r in rows])
    f = f or FloodStage(TABLE)
    got: dict[tuple[str, int, int], float] = {}
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for lo, hi in pairwise(edges):
        for d in f.step(b.take(np.arange(lo, hi))).derived:
            got.update({(d.name, s, t): v for s, t, v in
                        zip(d.source.tolist(), d.ts_ns.tolist(), d.value.tolist(), strict=True)})
    return got, f


@settings(max_examples=100, deadline=None)
@given(walks, st.lists(st.integers(0, 80), max_size=6))
def test_same_result_in_one_batch_or_many(rows: list[tuple[int, int, float]],
                                          cuts: list[int]) -> None:
    one, _ = run(rows, [])
    many, _ = run(rows, cuts)
    assert one.keys() == many.keys()
    for k, v in one.items():
        assert many[k] == pytest.approx(v, rel=1e-9, abs=1e-6, nan_ok=True), k


@settings(max_examples=50, deadline=None)
@given(walks, walks)
def test_state_round_trip_neither_resets_nor_refires(first: list[tuple[int, int, float]],
                                                     second: list[tuple[int, int, float]]) -> None:
    _, f = run(first, [])
    g = FloodStage(TABLE)
    g.restore({k: v.copy() for k, v in f.state().items()})
    late = [(s, dt + 10_000, v) for s, dt, v in second]  # strictly after the first walk
    a, _ = run(late, [], f)
    b, _ = run(late, [], g)
    assert a.keys() == b.keys()
    assert all(a[k] == pytest.approx(b[k], nan_ok=True) for k in a)


def test_a_spike_flagged_by_quality_stays_out_of_the_rate_of_rise() -> None:
    # 1 cm a minute for 40 minutes (60 cm/h), one echo 300 cm too high at minute 20: quality
    # flags it (and the return) as spikes; the rise fit leaves the flagged readings out.
    from processors import ProcessorContext, build_chain
    from processors.settings import ProcessorSettings
    level = 100.0 + np.arange(40)
    level[20] += 300.0
    batch = TelemetryBatch.from_arrays(np.arange(40) * MIN, [L1] * 40, level)
    chain = build_chain(["quality", "flood"], ProcessorContext(TABLE, settings=ProcessorSettings()))
    plain = build_chain(["flood"], ProcessorContext(TABLE, settings=ProcessorSettings()))
    assert chain.table is not None
    rise_id = chain.table.derived[("level_rise_cm_h", False)][L1]

    def rise(c: object) -> np.ndarray:
        d = c.run(batch).derived  # type: ignore[attr-defined]
        return d.value[d.series == rise_id]

    robust, naive = rise(chain), rise(plain)
    after = slice(-10, None)  # the last 10 minutes: the spike is inside the 30-minute window
    assert np.allclose(robust[after], 60.0)
    assert np.abs(naive[after] - 60.0).max() > 30.0  # the plain least squares is thrown off


def naive_rise(ts: np.ndarray, level: np.ndarray, window_s: int = 1800) -> np.ndarray:
    """The definition, reading by reading: least squares over (T - window, t], T = t rounded
    up to window / 30; NaN levels (spikes) out of the fit but not out of the window's span."""
    g = window_s * 1_000_000_000 // 30
    out = np.full(len(ts), np.nan)
    for i, t in enumerate(ts):
        top = -(-int(t) // g) * g
        m = (ts > top - 30 * g) & (ts <= t)
        fit = m & np.isfinite(level)
        x, y = (ts[fit] - t) / 1e9, level[fit]
        if fit.sum() >= 3 and (t - ts[m].min()) * 4 >= window_s * 1e9 and np.ptp(x) > 0:
            out[i] = np.polyfit(x, y, 1)[0] * 3600.0
    return out


@pytest.mark.parametrize("cuts", [[], [5, 2000], [3999]])
def test_rate_of_rise_with_many_readings_per_bucket_equals_the_definition(cuts: list[int]) -> None:
    # a gauge ~30 times too fast, off any grid, rising 20 cm/h with noise and spikes, a gap
    rng = np.random.default_rng(11)
    ts = np.cumsum(rng.integers(1, 4_000_000_000, 4000)) + 1_700_000_000 * 10**9
    ts[3000:] += 3 * 3600 * 10**9
    level = 100 + (ts - ts[0]) / 1e9 / 180 + rng.normal(0, 0.5, len(ts))
    flags = np.where(rng.random(len(ts)) < 0.02, 1 << 9, 0).astype(np.uint16)  # FLAG_SPIKE
    b = TelemetryBatch.from_arrays(ts, [L3] * len(ts), level)
    b = b.with_flags(flags != 0, np.uint16(1 << 9))
    f = FloodStage(TABLE)
    edges = [0, *cuts, len(b)]
    got = np.concatenate([f.step(b.take(np.arange(lo, hi))).by_name()["level_rise_cm_h"].value
                          for lo, hi in pairwise(edges)])
    want = naive_rise(ts, np.where(flags != 0, np.nan, level))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-6, atol=1e-6)
