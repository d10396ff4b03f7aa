"""AirQuality processor: averaging periods, completeness (hourly share, 6 of 8, 18 of 24, NowCast
2 of 3), index = max sub-index, critical pollutant, category, EPA gas units, SO2 above 200,
staleness, counters, split invariance and state round trip.

The stations report every 15 minutes (``interval_s`` 900): an hour needs 3 of its 4 reports."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from devices.registry import parse_registry
from devices.series import SeriesTable
from processors.aqi import POLLUTANTS, AirQuality
from processors.domain.aqi_tables import ppb_to_ugm3
from processors.domain.derived import Output

H = 3_600_000_000_000
GASES = ("pm25", "pm10", "so2", "co", "o3", "no2")
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": f"aq{i}", "kind": "aq", "site": "s", "interval_s": 900,
                 "metrics": {**{g: {"unit": "ug/m3"} for g in GASES},
                             "temperature_c": {"unit": "C"}}} for i in range(2)],
})
TABLE = SeriesTable.from_registry(REGISTRY)
SID = {g: TABLE.lookup["aq0"][g] for g in GASES}
Row = tuple[float, str, float]


def ug(gas: str, ppb: float) -> float:
    return float(ppb_to_ugm3(gas, np.array(ppb)))


def reports(metric: str, value: float | Callable[[float], float], start: float, end: float,
            drop: tuple[float, ...] = ()) -> list[Row]:
    """aq0's ``metric`` every 15 minutes at hours start, start + 0.25, ... up to ``end``
    (included), except at the hours in ``drop``."""
    hours = [start + q / 4 for q in range(round((end - start) * 4) + 1)]
    return [(h, metric, value(h) if callable(value) else value) for h in hours if h not in drop]


def hour(h: int) -> tuple[float, ...]:
    """The 4 report times of the hour (h - 1, h]."""
    return (h - 0.75, h - 0.5, h - 0.25, float(h))


def feed(p: AirQuality, rows: list[Row]) -> Output:
    rows = sorted(rows)
    return p.step(TelemetryBatch.from_arrays([int(h * H) for h, _, _ in rows],
                                             [SID[m] for _, m, _ in rows], [v for *_, v in rows]))


def station(out: Output, name: str) -> list[float]:
    return [float(x) for x in out.get(name, per_series=False).value]


def sub(out: Output, name: str, metric: str) -> dict[float, float]:
    """Per-series values of ``name`` for aq0's ``metric`` by hour, NaN (not derived) left out."""
    d = out.get(name, per_series=True)
    keep = (d.source == SID[metric]) & np.isfinite(d.value)
    return dict(zip((d.ts_ns[keep] / H).tolist(), d.value[keep].tolist(), strict=True))


def test_ispu_is_the_mean_of_24_hourly_means_once_18_are_complete() -> None:
    out = feed(AirQuality(TABLE), reports("pm25", lambda h: 10.0 if h < 12 else 21.0, 0, 23.75))
    assert out.get("ispu", per_series=True).metric_names(TABLE)[0] == "pm25_ispu"
    got = sub(out, "ispu", "pm25")
    # at 23.75: 12 hourly means of 10 and 12 of 21, mean 15.5 -> ISPU 50
    assert got[23.75] == 50.0 and station(out, "ispu")[-1] == 50.0
    # at 17.5 the oldest hour (-0.5, 0.5] holds 3 reports: 18 valid hours, exactly enough.
    # Means: 5 x 21, (10 + 3 x 21) / 4 = 18.25, 12 x 10 -> 13.514 µg/m³ -> 13.514 / 15.5 * 50
    assert got[17.5] == 44.0
    # at 17.25 that hour holds 2 of 4 reports: 17 valid hours, one short -> no sub-index
    assert min(got) == 17.5
    assert AirQuality(TABLE).counts() == {f"aqi_incomplete_{g}": 0 for g in GASES}


@pytest.mark.parametrize(("std", "metric", "value", "end", "drop", "expected"), [
    pytest.param("aqi", "co", ug("co", 9400), 8, hour(3) + hour(5), 100.0, id="8h-6-of-8"),
    pytest.param("aqi", "co", ug("co", 9400), 8, hour(3) + hour(5) + hour(6), None,
                 id="8h-5-of-8"),
    pytest.param("aqi", "co", ug("co", 9400), 8, hour(3) + hour(5) + (6.5,), 100.0,
                 id="8h-6-of-8-one-hour-at-3-of-4-reports"),
    pytest.param("aqi", "co", ug("co", 9400), 8, hour(3) + hour(5) + (6.5, 6.75), None,
                 id="8h-one-hour-at-2-of-4-reports"),
    pytest.param("aqi", "pm10", 100.0, 24, sum((hour(h) for h in range(2, 8)), ()), 73.0,
                 id="24h-18-of-24"),
    pytest.param("aqi", "pm10", 100.0, 24, sum((hour(h) for h in range(2, 9)), ()), None,
                 id="24h-17-of-24"),
    pytest.param("ispu", "pm10", 100.0, 24, sum((hour(h) for h in range(2, 8)), ()), 75.0,
                 id="ispu-18-of-24"),
    pytest.param("ispu", "so2", 180.0, 24, sum((hour(h) for h in range(2, 9)), ()), None,
                 id="ispu-17-of-24"),
])
def test_an_average_needs_75_percent_of_its_hours(std: str, metric: str, value: float,
                                                   end: int, drop: tuple[float, ...],
                                                   expected: float | None) -> None:
    """Reports at 0.25 .. ``end``: the average ending at ``end`` covers the hours (h-1, h]."""
    p = AirQuality(TABLE, standard=std)
    got = sub(feed(p, reports(metric, value, 0.25, end, drop)), std, metric)
    assert got.get(float(end)) == expected
    # PM10 100 µg/m³: EPA (100 - 55) * 49 / 99 + 51 = 73.3; ISPU 50 + 50 * 50 / 100 = 75
    assert p.counts()[f"aqi_incomplete_{metric}"] == len(reports(metric, 0, 0.25, end, drop)) - (
        len(got))


def test_an_hourly_mean_needs_75_percent_of_the_expected_reports() -> None:
    p = AirQuality(TABLE, standard="aqi")
    out = feed(p, reports("no2", ug("no2", 101), 0, 0.5))
    assert sub(out, "aqi", "no2") == {0.5: 101.0}  # 3 of 4 reports; at 0 and 0.25: 1 and 2
    assert p.counts()["aqi_incomplete_no2"] == 2


def test_an_incomplete_reading_keeps_the_latest_complete_sub_index_in_the_index() -> None:
    p = AirQuality(TABLE, standard="aqi")
    feed(p, reports("no2", ug("no2", 101), 0, 0.5))
    out = feed(p, [(1.75, "no2", ug("no2", 400))])  # alone in its hour: no sub-index
    assert sub(out, "aqi", "no2") == {}
    assert station(out, "aqi") == [101.0]


def test_index_is_the_max_and_names_the_critical_pollutant() -> None:
    rows = reports("pm25", 15.5, 0, 24) + reports("so2", 180.0, 0, 24) + reports(
        "co", 100.0, 0, 24)
    out = feed(AirQuality(TABLE), rows)
    assert station(out, "ispu")[-1] == 100.0
    assert station(out, "ispu_critical")[-1] == POLLUTANTS.index("so2")
    assert station(out, "ispu_category")[-1] == 1.0
    assert [sub(out, "ispu", m)[24.0] for m in ("pm25", "so2", "co")] == [50.0, 100.0, 1.0]


def test_stale_sub_index_drops_out_of_the_index() -> None:
    p = AirQuality(TABLE, max_age_s=3 * 3600)
    feed(p, reports("so2", 400.0, 0, 23.75) + reports("pm25", 15.5, 0, 23.75))
    assert station(feed(p, reports("pm25", 15.5, 24, 26)), "ispu")[-1] == 200.0  # SO2 2.25 h old
    assert station(feed(p, reports("pm25", 15.5, 26.25, 27)), "ispu")[-1] == 50.0  # 3.25 h old


@pytest.mark.parametrize(("metric", "ugm3", "aqi"), [
    pytest.param("o3", ug("o3", 70.0), 100, id="o3-8h-0.070ppm"),
    pytest.param("so2", ug("so2", 75.0), 100, id="so2-75ppb"),
    pytest.param("no2", ug("no2", 101.0), 101, id="no2-101ppb"),
    pytest.param("co", ug("co", 9400.0), 100, id="co-9.4ppm"),
    pytest.param("pm25", 35.4, 100, id="pm25"),
])
def test_epa_converts_gases_to_ppm_or_ppb(metric: str, ugm3: float, aqi: int) -> None:
    out = feed(AirQuality(TABLE, standard="aqi"), reports(metric, ugm3, 0, 24))
    assert station(out, "aqi")[-1] == aqi


def test_epa_o3_takes_the_larger_of_8h_and_1h() -> None:
    high = ug("o3", 405.0)  # 1-hour 0.405 ppm -> 301; 8-hour mean 0.0506 ppm -> 47
    out = feed(AirQuality(TABLE, standard="aqi"),
               reports("o3", lambda h: high if h > 7 else 0.0, 0.25, 8))
    assert station(out, "aqi")[-1] == 301.0


@pytest.mark.parametrize(("ppb", "expected"), [
    pytest.param(lambda h: 400.0 if h > 23 else 100.0, 200.0,
                 id="1h-400ppb-24h-112.5ppb-stays-200"),
    pytest.param(lambda h: 500.0 if h > 12 else 300.0, 232.0,
                 id="1h-500ppb-24h-400ppb-from-the-24h-table"),
    pytest.param(lambda h: 700.0, 348.0, id="24h-700ppb-hazardous"),
    pytest.param(lambda h: 304.0, 200.0, id="1h-304ppb-1h-table"),
])
def test_epa_so2_above_200_comes_from_the_24_hour_average(
        ppb: Callable[[float], float], expected: float) -> None:
    # 24 h at 400 -> (300 - 201) / (604 - 305) * (400 - 305) + 201 = 232.45 (the 1-hour 500 ppb
    # would read 266); 700 -> (500 - 301) / (1004 - 605) * (700 - 605) + 301 = 348.4
    out = feed(AirQuality(TABLE, standard="aqi"),
               reports("so2", lambda h: ug("so2", ppb(h)), 0.25, 24))
    assert sub(out, "aqi", "so2")[24.0] == expected


def test_epa_so2_above_304ppb_with_an_incomplete_day_is_200() -> None:
    out = feed(AirQuality(TABLE, standard="aqi"), reports("so2", ug("so2", 400), 0.25, 2))
    assert sub(out, "aqi", "so2")[2.0] == 200.0


@pytest.mark.parametrize(("drop", "expected"), [
    pytest.param(hour(11)[:2], (40 + 10 * sum(0.5 ** k for k in range(2, 12)))
                 / (1 + sum(0.5 ** k for k in range(2, 12))), id="2-of-3"),
    pytest.param(hour(11)[:2] + hour(12)[:2], math.nan, id="1-of-3"),
])
def test_epa_nowcast_needs_2_of_the_3_latest_hours(drop: tuple[float, ...],
                                                    expected: float) -> None:
    """PM2.5 10 µg/m³ in hours (0, 11], 40 in (11, 12]; w = max(10 / 40, 0.5) = 0.5.
    2-of-3: hour (10, 11] is missing, so 40 weighs 1 and the older 10s 0.5^2 .. 0.5^11: 30.0."""
    p = AirQuality(TABLE, standard="aqi")
    out = feed(p, reports("pm25", lambda h: 40.0 if h > 11 else 10.0, 0.25, 12, drop)
               + reports("pm10", 10.0, 0.25, 12))
    got = sub(out, "nowcast", "pm25")
    if math.isnan(expected):
        assert 12.0 not in got and p.counts()["aqi_incomplete_pm25_nowcast"] >= 1
    else:
        assert got[12.0] == math.floor(expected * 10) / 10 == 30.0
    assert sub(out, "nowcast", "pm10")[12.0] == 10.0  # every reading with 2 of 3 hours has one
    # 0.25 .. 1.5: fewer than 2 of the 3 hours before each report hold 3 reports
    assert p.counts()["aqi_incomplete_pm10_nowcast"] == 6


def test_bad_standard() -> None:
    with pytest.raises(ValueError, match="standard"):
        AirQuality(TABLE, standard="caqi")


def test_restores_a_snapshot_taken_before_the_counters() -> None:
    a = AirQuality(TABLE)
    feed(a, reports("pm25", 15.5, 0, 1))
    old = {k: v.copy() for k, v in a.state().items() if k != "incomplete"}
    b = AirQuality(TABLE)
    b.restore(old)
    assert b.counts()["aqi_incomplete_pm25"] == 0
    b.restore({k: v.copy() for k, v in a.state().items()})
    assert b.counts() == a.counts() and a.counts()["aqi_incomplete_pm25"] == 5


Result = dict[tuple[str, bool, int, int], float]


def run(p: AirQuality, hours: np.ndarray, metrics: list[str], values: list[float],
        cuts: list[int]) -> Result:
    b = TelemetryBatch.from_arrays((np.asarray(hours) * H).astype(np.int64),
                                   [SID[m] for m in metrics], values)
    got: Result = {}
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for lo, hi in pairwise(edges):
        for d in p.step(b.take(np.arange(lo, hi))).derived:
            # a station-level value is keyed by its device, whichever series anchors it
            key = d.source if d.per_series else TABLE.device_index[d.source]
            got.update({(d.name, d.per_series, k, t): v for k, t, v in zip(
                key.tolist(), d.ts_ns.tolist(), d.value.tolist(), strict=True)})
    return got


# Stations report in time order: (hours since previous message, metric, value).
msgs = st.lists(st.tuples(st.sampled_from([0.0, 0.25, 1.0, 5.0]), st.sampled_from(GASES),
                          st.floats(0, 600)), min_size=1, max_size=60)


def run_msgs(p: AirQuality, rows: list[Row], cuts: list[int], t0: float = 0) -> Result:
    return run(p, t0 + np.cumsum([r[0] for r in rows]), [r[1] for r in rows],
               [r[2] for r in rows], cuts)


@settings(max_examples=80, deadline=None)
@given(msgs, st.lists(st.integers(0, 60), max_size=5), st.sampled_from(["ispu", "aqi"]))
def test_same_result_in_one_batch_or_many(rows: list[Row], cuts: list[int], std: str) -> None:
    a, b = AirQuality(TABLE, standard=std), AirQuality(TABLE, standard=std)
    one, many = run_msgs(a, rows, []), run_msgs(b, rows, cuts)
    # A station's index at a timestamp is rewritten as more of that message arrives: last wins.
    assert one == pytest.approx(many, nan_ok=True)
    assert a.counts() == b.counts()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.1, 0.3]),
       st.lists(st.integers(0, 400), max_size=6), st.sampled_from(["ispu", "aqi"]))
def test_completeness_is_the_same_in_one_batch_or_many(seed: int, loss: float, cuts: list[int],
                                                       std: str) -> None:
    """A station reporting PM2.5, SO2 and O3 every 15 minutes for 30 hours, losing a share of
    its reports at random: windows fall on both sides of every threshold."""
    rng = np.random.default_rng(seed)
    hours = np.repeat(np.arange(120) / 4, 3)
    metrics = ["pm25", "so2", "o3"] * 120
    keep = rng.random(len(hours)) >= loss
    values = rng.uniform(0, 900, len(hours))
    args = (hours[keep], [m for m, k in zip(metrics, keep, strict=True) if k], values[keep])
    a, b = AirQuality(TABLE, standard=std), AirQuality(TABLE, standard=std)
    assert run(a, *args, []) == pytest.approx(run(b, *args, cuts), nan_ok=True)
    assert a.counts() == b.counts()


@settings(max_examples=40, deadline=None)
@given(msgs, msgs)
def test_state_round_trip(first: list[Row], second: list[Row]) -> None:
    a = AirQuality(TABLE)
    run_msgs(a, first, [])
    b = AirQuality(TABLE)
    b.restore({k: v.copy() for k, v in a.state().items()})
    assert run_msgs(a, second, [], t0=1000) == pytest.approx(run_msgs(b, second, [], t0=1000),
                                                             nan_ok=True)
    assert a.counts() == b.counts()
