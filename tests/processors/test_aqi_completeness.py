"""Completeness rules of the air-quality averages: readings an hour needs per reporting
interval, hours an n-hour average needs (at the threshold and one short), hourly means ending
at each reading (on the 5-minute grid), against a naive reference with many readings per
bucket."""

from __future__ import annotations

import math

import numpy as np
import pytest

from processors.domain.aqi_completeness import (
    H,
    hourly_means,
    hours_needed,
    readings_needed,
    window_mean,
)
from processors.domain.rolling import Rings

R = 300_000_000_000  # the 5-minute grid


@pytest.mark.parametrize(("interval_s", "need"), [
    pytest.param(60, 45, id="1min-45-of-60"),
    pytest.param(240, 12, id="4min-11.25-rounds-up"),
    pytest.param(300, 9, id="5min-9-of-12"),
    pytest.param(600, 5, id="10min-4.5-rounds-up"),
    pytest.param(900, 3, id="15min-3-of-4"),
    pytest.param(1200, 3, id="20min-2.25-rounds-up-to-all"),
    pytest.param(3600, 1, id="hourly"),
    pytest.param(7200, 1, id="slower-than-hourly-at-least-1"),
])
def test_readings_an_hour_needs(interval_s: float, need: int) -> None:
    assert readings_needed(np.array([interval_s], np.float64)).tolist() == [need]


@pytest.mark.parametrize(("hours", "need"), [
    pytest.param(1, 1, id="1h"), pytest.param(8, 6, id="8h-6-of-8"),
    pytest.param(24, 18, id="24h-18-of-24"), pytest.param(3, 3, id="3h-2.25-rounds-up"),
])
def test_hours_an_average_needs(hours: int, need: int) -> None:
    assert hours_needed(hours) == need


def hours_with(valid: int, total: int, value: float = 2.0) -> np.ndarray:
    """One row: ``valid`` hourly means of ``value`` (the newest first), the rest NaN."""
    row = np.full((1, total), np.nan)
    row[0, :valid] = value
    row[0, :min(valid, 1)] = 2 * value  # not all alike: the mean is over the valid ones only
    return row


@pytest.mark.parametrize(("hours", "valid", "expected"), [
    pytest.param(8, 6, (4 + 5 * 2) / 6, id="8h-6-of-8-at-the-threshold"),
    pytest.param(8, 5, math.nan, id="8h-5-of-8-one-short"),
    pytest.param(24, 18, (4 + 17 * 2) / 18, id="24h-18-of-24-at-the-threshold"),
    pytest.param(24, 17, math.nan, id="24h-17-of-24-one-short"),
    pytest.param(1, 1, 4.0, id="1h"),
    pytest.param(1, 0, math.nan, id="1h-missing"),
])
def test_window_mean(hours: int, valid: int, expected: float) -> None:
    got = float(window_mean(hours_with(valid, 24), hours)[0])
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_window_mean_counts_only_its_own_hours() -> None:
    row = np.full((1, 24), 1.0)
    row[0, 3:8] = np.nan  # 3 of the first 8 valid, 19 of 24
    assert math.isnan(float(window_mean(row, 8)[0]))
    assert float(window_mean(row, 24)[0]) == 1.0


def means(series: list[int], ts: list[int], values: list[float], need: list[int],
          hours: int, cut: int | None = None) -> np.ndarray:
    """`hourly_means` of the rows (sorted by series, ts), fed in one frame or two (``cut``)."""
    rings = Rings(np.ones(2, bool), R, 24 * 12, sums=("value",))
    s, t = np.asarray(series, np.int32), np.asarray(ts, np.int64)
    v, nd = np.asarray(values, np.float64), np.asarray(need, np.int64)
    out = []
    parts = [slice(0, len(s))] if cut is None else [slice(0, cut), slice(cut, len(s))]
    for p in parts:
        f = rings.frame(s[p], t[p])
        out.append(hourly_means(f, v[p], nd[p], hours, 12))
        rings.fold(f, {"value": v[p]})
    return np.concatenate(out)


def test_hourly_means_end_at_each_reading() -> None:
    """Series 0 every 15 min from 0.25 h to 3 h, value = its hour number; series 1 alone at
    3 h. The reading at 3 h: hour (2, 3] = 2.25 .. 3 -> mean of 2.25, 2.5, 2.75, 3 = 2.625."""
    t = np.arange(1, 13) * H // 4
    got = means([0] * 12 + [1], [*t.tolist(), 3 * H], [*(t / H).tolist(), 7.0], [3] * 12 + [1], 4)
    assert got[11].tolist()[:3] == [2.625, 1.625, 0.625]  # (2,3], (1,2], (0,1]
    assert math.isnan(got[11, 3])  # (-1, 0]: empty
    assert got[12, 0] == 7.0 and np.isnan(got[12, 1:]).all()  # its own series only
    assert np.isnan(got[1, 0]) and got[2, 0] == 0.5  # 2 then 3 reports in the first hour


def naive(ts: np.ndarray, v: np.ndarray, need: int, hours: int) -> np.ndarray:
    """The definition, reading by reading: hour k of a reading at t is (T - (k+1) h, T - k h]
    with T = t rounded up to 5 minutes, readings after t left out."""
    out = np.full((len(ts), hours), np.nan)
    for i, t in enumerate(ts):
        top = -(-int(t) // R) * R
        for k in range(hours):
            m = (ts > top - (k + 1) * H) & (ts <= top - k * H) & (ts <= t)
            if m.sum() >= need:
                out[i, k] = v[m].mean()
    return out


@pytest.mark.parametrize("cut", [None, 1, 2000, 4321])
def test_many_readings_per_bucket_equal_the_naive_definition(cut: int | None) -> None:
    # a device 100 times too fast: ~4 readings a second for 40 minutes off any grid, then
    # a gap, then every 7.3 s: thousands of readings per 5-minute bucket
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(1, 500_000_000, 6000)) + 1_700_000_000 * 10**9
    ts[4000:] += 2 * H + (ts[4000:] - ts[4000]) * 30
    v = rng.uniform(0, 500, len(ts))
    got = means([0] * len(ts), ts.tolist(), v.tolist(), [45] * len(ts), 4, cut)
    want = naive(ts, v, 45, 4)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-9)


def test_on_the_grid_the_hours_end_exactly_at_the_reading() -> None:
    # readings every 5 minutes on the grid: each hour is (t - (k+1) h, t - k h], 12 readings
    ts = np.arange(1, 40) * R
    got = means([0] * len(ts), ts.tolist(), ts.astype(float).tolist(), [12] * len(ts), 2)
    assert got[-1, 0] == float(np.mean(ts[-12:])) and got[-1, 1] == float(np.mean(ts[-24:-12]))
    assert np.isnan(got[10, 0]) and got[11, 0] == float(np.mean(ts[:12]))
