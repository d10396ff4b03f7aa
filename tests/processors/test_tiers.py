"""Tiers: per (series, bucket) aggregates equal a naive group-by, however the batches split;
the last write of each bucket is final; state() / restore() continues identically."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.domain.derived import Tier
from processors.tiers import Tiers

S = 1_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": "d", "kind": "k", "site": "s", "interval_s": 10,
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
            collect(got, tier)
    for tier in t.flush(all_open=True):  # a clean stop writes the open buckets
        collect(got, tier)
    return got


def collect(got: dict[Key, Agg], tier: Tier) -> None:
    for i in range(len(tier)):
        got[(tier.resolution_s, int(tier.series[i]), int(tier.ts_ns[i]))] = (
            float(tier.mean[i]), float(tier.min[i]), float(tier.max[i]), int(tier.count[i]))


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
    "devices": [{"id": "gauge", "kind": "k", "site": "s", "interval_s": 60,
                 "metrics": {"a": {"unit": "x"}}},
                {"id": "counter", "kind": "k", "site": "s", "interval_s": 30,
                 "metrics": {"a": {"unit": "x"}}}],
}))


@settings(max_examples=50, deadline=None)
@given(rows_st, st.lists(st.integers(0, 80), max_size=6))
def test_a_tier_covers_only_the_series_reporting_more_often_than_it(
        rows: list[tuple[int, int, float]], cuts: list[int]) -> None:
    # series 0 reports every 60 s, one reading per minute: its raw points already are its
    # 1-minute tier; series 1 reports every 30 s and is in both tiers
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

    def collect_all(tiers: tuple[Tier, ...]) -> None:
        for tier in tiers:
            collect(got, tier)

    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for k, (lo, hi) in enumerate(pairwise(edges)):
        part = b.take(np.arange(lo, hi))
        assert t.defer(part) is part
        if k < len(snapshots) and snapshots[k]:
            t.state()
        if k < len(flushes) and flushes[k]:
            collect_all(t.flush())
    collect_all(t.flush(all_open=True))
    want = naive(b, (60, 3600))
    assert got.keys() == want.keys()
    for key, (mean, vmin, vmax, n) in want.items():
        assert got[key][1:] == (vmin, vmax, n)
        assert got[key][0] == pytest.approx(mean, rel=1e-9, abs=1e-9)
    assert t.flush() == ()


T_HOUR = 1_699_999_200 * S  # an hour boundary


def test_an_open_bucket_is_rewritten_at_the_refresh_rate_not_with_every_reading() -> None:
    # Two series every 10 s for 3 hours, flushed after every reading as at a low rate; series 1
    # goes silent after 70 minutes. The 1-hour rows: closed hours once, the open hour at most
    # every 600 s of data clock, and never further behind than that.
    t = Tiers(TABLE, resolutions_s=(3600,))
    stored: dict[Key, Agg] = {}
    rows = {0: 0, 1: 0}
    for k in range(3 * 360):
        ts = T_HOUR + k * 10 * S
        series = [0, 1] if k < 420 else [0]
        t.defer(TelemetryBatch.from_arrays([ts] * len(series), series, [float(k)] * len(series)))
        for tier in t.flush():
            rows.update({s: rows[s] + int(np.count_nonzero(tier.series == s)) for s in (0, 1)})
            collect(stored, tier)
        for s in series:  # what is stored of this hour covers every reading up to clock - 600 s
            hour = ts - ts % (3600 * S)
            lag_ok = (ts - hour) // (10 * S) + 1 - 60  # readings of the hour older than 600 s
            assert stored.get((3600, s, hour), (0, 0, 0, 0))[3] >= lag_ok
    assert rows[0] <= 3 * 8 and rows[0] >= 3 * 6  # ~6 refreshes an hour (+ close), not 360
    for tier in t.flush(all_open=True):
        collect(stored, tier)
    b = TelemetryBatch.from_arrays(
        [T_HOUR + k * 10 * S for k in range(1080)] + [
            T_HOUR + k * 10 * S for k in range(420)],
        [0] * 1080 + [1] * 420, [float(k) for k in range(1080)] + [float(k) for k in range(420)])
    want = naive(b, (3600,))
    assert stored.keys() == want.keys()
    for key, (mean, vmin, vmax, n) in want.items():
        assert stored[key][1:] == (vmin, vmax, n) and stored[key][0] == pytest.approx(mean)
    # the silent series' last hour reached the store from the data clock, before the stop
    assert rows[1] >= 2


def test_a_snapshot_without_the_refresh_state_still_restores() -> None:
    # snapshots taken before `clock`, `last` and `shown` existed: open buckets rewritten once
    a = Tiers(TABLE, resolutions_s=(60,))
    a.step(TelemetryBatch.from_arrays([0, 10 * S], [0, 0], [1.0, 3.0]))
    old = {k: v for k, v in a.state().items() if not k.endswith(("_last", "_shown", "clock"))}
    r = Tiers(TABLE, resolutions_s=(60,))
    r.restore(old)
    [tier] = r.step(TelemetryBatch.from_arrays([20 * S], [0], [5.0])).tiers
    assert (tier.ts_ns.tolist(), tier.count.tolist(), tier.mean.tolist()) == ([0], [3], [3.0])


def test_a_catch_up_that_closes_a_bucket_writes_it_whole() -> None:
    # kill -9 between two checkpoints: the snapshot saw 4 readings of the hour (and its
    # checkpoint wrote them); the catch-up replays the rest of the hour and the next hour's
    # first readings. The hour it closes must be written whole (restored + replayed part):
    # the stored row otherwise keeps the 4 of the checkpoint. (CI: 13 counted of 14.)
    hour = 1_700_002_800 * S  # 23:00 UTC, a whole hour
    first = Tiers(TABLE, resolutions_s=(3600,))
    ts = [hour - (5 - k) * 60 * S for k in range(4)]  # 22:55 .. 22:58
    written = {}
    collect(written, *first.step(TelemetryBatch.from_arrays(ts, [0] * 4, [1.0] * 4)).tiers)
    assert written == {(3600, 0, hour - 3600 * S): (1.0, 1.0, 1.0, 4)}
    again = Tiers(TABLE, resolutions_s=(3600,))
    again.restore(first.state())
    rest = [hour - 60 * S, hour, hour + 60 * S]  # 22:59, 23:00, 23:01
    again.defer(TelemetryBatch.from_arrays(rest, [0] * 3, [2.0] * 3))  # as Chain.replay does
    again.replayed(catch_up=True)
    for tier in again.flush(all_open=True):
        collect(written, tier)
    assert written == {(3600, 0, hour - 3600 * S): (1.2, 1.0, 2.0, 5),
                       (3600, 0, hour): (2.0, 2.0, 2.0, 2)}


def test_a_full_warm_up_never_writes_its_partial_first_bucket() -> None:
    # No snapshot: the warm-up's window starts mid-hour, so its first hour holds only part of
    # the stored readings. That row must not overwrite the stored one; the open hour is
    # written whole.
    hour = 1_700_002_800 * S
    warm = Tiers(TABLE, resolutions_s=(3600,))
    warm.defer(TelemetryBatch.from_arrays([hour - 60 * S, hour], [0, 0], [2.0, 2.0]))
    warm.replayed(catch_up=False)
    written: dict[Key, Agg] = {}
    for tier in warm.flush(all_open=True):
        collect(written, tier)
    assert written == {(3600, 0, hour): (2.0, 2.0, 2.0, 1)}
