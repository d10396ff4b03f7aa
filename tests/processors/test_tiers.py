"""Tiers: per (series, bucket) aggregates equal a naive group-by, however the batches split;
the last write of each bucket is final; state() / restore() continues identically."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.registry import parse_registry
from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from processors.domain.derived import Tier
from processors.tiers import Tiers

S = 1_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "d", "kind": "k", "site": "s",
                 "metrics": {"a": {"unit": "x"}, "b": {"unit": "x"}}}],
})
TABLE = SeriesTable.from_registry(REGISTRY)
Key = tuple[int, int, int]  # resolution, series, bucket start
Agg = tuple[float, float, float, int]

rows_st = st.lists(st.tuples(st.integers(0, 1), st.integers(1, 900), st.floats(-1e3, 1e3)),
                   min_size=1, max_size=80)


def make_batch(rows: list[tuple[int, int, float]], t0: int = 1_700_000_000) -> TelemetryBatch:
    clock = {0: t0 * S, 1: t0 * S}
    ts = []
    for s, dt, _ in rows:
        clock[s] += dt * S
        ts.append(clock[s])
    return TelemetryBatch.from_arrays(ts, [r[0] for r in rows], [r[2] for r in rows])


def run(t: Tiers, b: TelemetryBatch, cuts: list[int]) -> dict[Key, Agg]:
    got: dict[Key, Agg] = {}
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for lo, hi in pairwise(edges):
        for tier in t.step(b.take(np.arange(lo, hi))).tiers:
            for i in range(len(tier)):
                got[(tier.resolution_s, int(tier.series[i]), int(tier.ts_ns[i]))] = (
                    float(tier.mean[i]), float(tier.min[i]), float(tier.max[i]),
                    int(tier.count[i]))
    return got


def naive(b: TelemetryBatch, resolutions: tuple[int, ...]) -> dict[Key, Agg]:
    groups: dict[Key, list[float]] = {}
    for s, ts, v in zip(b.series.tolist(), b.ts_ns.tolist(), b.value.tolist(), strict=True):
        for r in resolutions:
            groups.setdefault((r, s, ts // (r * S) * r * S), []).append(v)
    return {k: (sum(v) / len(v), min(v), max(v), len(v)) for k, v in groups.items()}


@settings(max_examples=100, deadline=None)
@given(rows_st, st.lists(st.integers(0, 80), max_size=6))
def test_tiers_equal_naive_group_by_in_any_split(rows: list[tuple[int, int, float]],
                                                 cuts: list[int]) -> None:
    b = make_batch(rows)
    got = run(Tiers(TABLE, resolutions_s=(60, 3600)), b, cuts)
    want = naive(b, (60, 3600))
    assert got.keys() == want.keys()
    for k, (mean, vmin, vmax, n) in want.items():
        assert got[k][1:] == (vmin, vmax, n)
        assert got[k][0] == pytest.approx(mean, rel=1e-9, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(rows_st, st.integers(0, 80))
def test_state_round_trip(rows: list[tuple[int, int, float]], cut: int) -> None:
    b = make_batch(rows)
    cut %= len(b) + 1
    a = Tiers(TABLE)
    run(a, b.take(np.arange(cut)), [])
    r = Tiers(TABLE)
    r.restore({k: v.copy() for k, v in a.state().items()})
    rest = b.take(np.arange(cut, len(b)))
    assert run(a, rest, []) == run(r, rest, [])


def test_replayed_batch_changes_nothing_and_bad_config() -> None:
    t = Tiers(TABLE, resolutions_s=(60,))
    b = TelemetryBatch.from_arrays([0, 10 * S, 70 * S], [0, 0, 0], [1.0, 3.0, 5.0])
    first = t.step(b).tiers[0]
    assert first.ts_ns.tolist() == [0, 60 * S]
    assert first.mean.tolist() == [2.0, 5.0]
    assert t.step(b).tiers == ()
    with pytest.raises(ValueError, match="resolutions"):
        Tiers(TABLE, resolutions_s=())


MIXED = SeriesTable.from_registry(parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "rain", "kind": "k", "site": "s", "interval_s": 300,
                 "metrics": {"a": {"unit": "x"}}},
                {"id": "level", "kind": "k", "site": "s", "interval_s": 60,
                 "metrics": {"a": {"unit": "x"}}}],
}))


@settings(max_examples=50, deadline=None)
@given(rows_st, st.lists(st.integers(0, 80), max_size=6))
def test_a_tier_finer_than_a_devices_interval_leaves_its_series_out(
        rows: list[tuple[int, int, float]], cuts: list[int]) -> None:
    # series 0 reports every 300 s: its raw points already are its 1-minute tier
    b = make_batch(rows)
    got = run(Tiers(MIXED, resolutions_s=(60, 3600)), b, cuts)
    want = {k: v for k, v in naive(b, (60, 3600)).items() if k[0] == 3600 or k[1] == 1}
    assert got.keys() == want.keys()
    for k, (mean, vmin, vmax, n) in want.items():
        assert got[k][1:] == (vmin, vmax, n)
        assert got[k][0] == pytest.approx(mean, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(rows_st, st.lists(st.integers(0, 80), max_size=6), st.lists(st.booleans(), max_size=7),
       st.lists(st.booleans(), max_size=7))
def test_deferred_tiers_equal_naive_group_by_however_flushed(
        rows: list[tuple[int, int, float]], cuts: list[int], flushes: list[bool],
        snapshots: list[bool]) -> None:
    # the pipeline's way: set batches aside, aggregate at checkpoints (state() in between)
    b = make_batch(rows)
    t = Tiers(TABLE, resolutions_s=(60, 3600))
    got: dict[Key, Agg] = {}

    def collect(tiers: tuple[Tier, ...]) -> None:
        for tier in tiers:
            for i in range(len(tier)):
                got[(tier.resolution_s, int(tier.series[i]), int(tier.ts_ns[i]))] = (
                    float(tier.mean[i]), float(tier.min[i]), float(tier.max[i]),
                    int(tier.count[i]))

    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for k, (lo, hi) in enumerate(pairwise(edges)):
        part = b.take(np.arange(lo, hi))
        assert t.defer(part) is part
        if k < len(snapshots) and snapshots[k]:
            t.state()
        if k < len(flushes) and flushes[k]:
            collect(t.flush())
    collect(t.flush())
    want = naive(b, (60, 3600))
    assert got.keys() == want.keys()
    for key, (mean, vmin, vmax, n) in want.items():
        assert got[key][1:] == (vmin, vmax, n)
        assert got[key][0] == pytest.approx(mean, rel=1e-9, abs=1e-9)
    assert t.flush() == ()
