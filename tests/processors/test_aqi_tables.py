"""ISPU and EPA AQI tables: hand-computed values at and around every band edge, categories,
SO2 above 200 from the 24-hour average, unit conversion, NowCast (2 of the 3 latest hours) and
monotonicity (hypothesis)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.domain.aqi_tables import (
    CATEGORIES,
    EPA_BANDS,
    ISPU_BOUNDS,
    ISPU_HOURS,
    category,
    epa_so2_subindex,
    epa_subindex,
    ispu_subindex,
    nowcast,
    ppb_to_ugm3,
    round_half_up,
    ugm3_to_ppb,
)


def one(f: Callable[..., npt.NDArray[np.float64]], *args: object, **kw: object) -> float:
    """The single value of a one-element result."""
    return float(np.asarray(f(*args, **kw)).item())


@pytest.mark.parametrize(("pollutant", "conc", "expected"), [
    pytest.param("pm25", 0.0, 0.0, id="pm25-zero"),
    pytest.param("pm25", 15.5, 50.0, id="pm25-50"),
    pytest.param("pm25", 15.6, 50 + 50 / 39.9 * 0.1, id="pm25-above-50"),
    pytest.param("pm25", 55.4, 100.0, id="pm25-100"),
    pytest.param("pm25", 150.4, 200.0, id="pm25-200"),
    pytest.param("pm25", 250.4, 300.0, id="pm25-300"),
    pytest.param("pm25", 500.0, 500.0, id="pm25-500"),
    pytest.param("pm25", 600.0, 500 + 100 * 200 / 249.6, id="pm25-extrapolated"),
    pytest.param("pm10", 50.0, 50.0, id="pm10-50"),
    pytest.param("pm10", 100.0, 75.0, id="pm10-mid-sedang"),
    pytest.param("pm10", 150.0, 100.0, id="pm10-100"),
    pytest.param("pm10", 350.0, 200.0, id="pm10-200"),
    pytest.param("pm10", 420.0, 300.0, id="pm10-300"),
    pytest.param("pm10", 460.0, 400.0, id="pm10-mid-berbahaya"),
    pytest.param("so2", 52.0, 50.0, id="so2-50"),
    pytest.param("so2", 180.0, 100.0, id="so2-100"),
    pytest.param("so2", 185.0, 100 + 100 / 220 * 5, id="so2-us-bound-is-not-an-edge"),
    pytest.param("so2", 400.0, 200.0, id="so2-200"),
    pytest.param("so2", 800.0, 300.0, id="so2-300"),
    pytest.param("so2", 1200.0, 500.0, id="so2-500"),
    pytest.param("co", 4000.0, 50.0, id="co-50"),
    pytest.param("co", 8000.0, 100.0, id="co-100"),
    pytest.param("co", 15000.0, 200.0, id="co-200"),
    pytest.param("co", 30000.0, 300.0, id="co-300"),
    pytest.param("o3", 120.0, 50.0, id="o3-50"),
    pytest.param("o3", 235.0, 100.0, id="o3-100"),
    pytest.param("o3", 1000.0, 500.0, id="o3-500"),
    pytest.param("no2", 80.0, 50.0, id="no2-50"),
    pytest.param("no2", 200.0, 100.0, id="no2-100"),
    pytest.param("no2", 1130.0, 200.0, id="no2-200"),
    pytest.param("no2", 2260.0, 300.0, id="no2-300"),
    pytest.param("hc", 45.0, 50.0, id="hc-50"),
    pytest.param("hc", 100.0, 100.0, id="hc-100"),
    pytest.param("hc", 215.0, 200.0, id="hc-200"),
    pytest.param("hc", 432.0, 300.0, id="hc-300"),
    pytest.param("hc", 648.0, 500.0, id="hc-500"),
])
def test_ispu_subindex(pollutant: str, conc: float, expected: float) -> None:
    assert one(ispu_subindex, pollutant, np.array([conc])) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("pollutant", "conc", "expected"), [
    pytest.param("pm25", 9.0, 50, id="pm25-good-top"),
    pytest.param("pm25", 9.05, 50, id="pm25-truncated-into-good"),
    pytest.param("pm25", 9.1, 51, id="pm25-moderate-bottom"),
    pytest.param("pm25", 12.0, 56, id="pm25-old-good-top-is-moderate-now"),
    pytest.param("pm25", 35.4, 100, id="pm25-moderate-top"),
    pytest.param("pm25", 35.5, 101, id="pm25-usg-bottom"),
    pytest.param("pm25", 55.4, 150, id="pm25-usg-top"),
    pytest.param("pm25", 55.5, 151, id="pm25-unhealthy-bottom"),
    pytest.param("pm25", 125.4, 200, id="pm25-unhealthy-top"),
    pytest.param("pm25", 125.5, 201, id="pm25-very-bottom"),
    pytest.param("pm25", 225.4, 300, id="pm25-very-top"),
    pytest.param("pm25", 225.5, 301, id="pm25-hazardous-bottom"),
    pytest.param("pm25", 325.4, 500, id="pm25-top"),
    pytest.param("pm10", 54.9, 50, id="pm10-truncated"),
    pytest.param("pm10", 55, 51, id="pm10-51"),
    pytest.param("pm10", 154, 100, id="pm10-100"),
    pytest.param("pm10", 155, 101, id="pm10-101"),
    pytest.param("pm10", 254, 150, id="pm10-150"),
    pytest.param("pm10", 255, 151, id="pm10-151"),
    pytest.param("pm10", 354, 200, id="pm10-200"),
    pytest.param("pm10", 355, 201, id="pm10-201"),
    pytest.param("pm10", 424, 300, id="pm10-300"),
    pytest.param("pm10", 425, 301, id="pm10-301"),
    pytest.param("pm10", 604, 500, id="pm10-500"),
    pytest.param("o3_8h", 0.054, 50, id="o3-50"),
    pytest.param("o3_8h", 0.055, 51, id="o3-51"),
    pytest.param("o3_8h", 0.0709, 100, id="o3-truncated-100"),
    pytest.param("o3_8h", 0.071, 101, id="o3-101"),
    pytest.param("o3_8h", 0.085, 150, id="o3-150"),
    pytest.param("o3_8h", 0.086, 151, id="o3-151"),
    pytest.param("o3_8h", 0.105, 200, id="o3-200"),
    pytest.param("o3_8h", 0.106, 201, id="o3-201"),
    pytest.param("o3_8h", 0.200, 300, id="o3-300"),
    pytest.param("o3_1h", 0.125, 101, id="o3-1h-101"),
    pytest.param("o3_1h", 0.405, 301, id="o3-1h-301"),
    pytest.param("co", 4.4, 50, id="co-50"),
    pytest.param("co", 4.5, 51, id="co-51"),
    pytest.param("co", 9.4, 100, id="co-100"),
    pytest.param("co", 12.5, 151, id="co-151"),
    pytest.param("co", 30.5, 301, id="co-301"),
    pytest.param("co", 50.4, 500, id="co-500"),
    pytest.param("so2", 35, 50, id="so2-50"),
    pytest.param("so2", 36, 51, id="so2-51"),
    pytest.param("so2", 75, 100, id="so2-100"),
    pytest.param("so2", 76, 101, id="so2-101"),
    pytest.param("so2", 185, 150, id="so2-150"),
    pytest.param("so2", 186, 151, id="so2-151"),
    pytest.param("so2", 304, 200, id="so2-200"),
    pytest.param("so2_24h", 305, 201, id="so2-24h-201"),
    pytest.param("so2_24h", 604, 300, id="so2-24h-300"),
    pytest.param("so2_24h", 605, 301, id="so2-24h-301"),
    pytest.param("so2_24h", 1004, 500, id="so2-24h-500"),
    pytest.param("no2", 53, 50, id="no2-50"),
    pytest.param("no2", 54, 51, id="no2-51"),
    pytest.param("no2", 100, 100, id="no2-100"),
    pytest.param("no2", 101, 101, id="no2-101"),
    pytest.param("no2", 360, 150, id="no2-150"),
    pytest.param("no2", 361, 151, id="no2-151"),
    pytest.param("no2", 649, 200, id="no2-200"),
    pytest.param("no2", 650, 201, id="no2-201"),
    pytest.param("no2", 1249, 300, id="no2-300"),
    pytest.param("no2", 1250, 301, id="no2-301"),
    pytest.param("no2", 2049, 500, id="no2-500"),
])
def test_epa_subindex_2024(pollutant: str, conc: float, expected: int) -> None:
    assert one(round_half_up, epa_subindex(pollutant, np.array([conc]))) == expected


@pytest.mark.parametrize(("conc", "expected"), [
    pytest.param(12.0, 50, id="good-top"),
    pytest.param(12.1, 51, id="moderate-bottom"),
    pytest.param(150.4, 200, id="unhealthy-top"),
    pytest.param(150.5, 201, id="very-bottom"),
    pytest.param(250.5, 301, id="hazardous-bottom"),
    pytest.param(350.4, 400, id="hazardous-400"),
    pytest.param(350.5, 401, id="hazardous-401"),
    pytest.param(500.4, 500, id="top"),
])
def test_epa_pm25_pre2024(conc: float, expected: int) -> None:
    got = epa_subindex("pm25", np.array([conc]), pm25_table="pre2024")
    assert one(round_half_up, got) == expected


def test_epa_undefined_ozone_and_so2_and_bad_table() -> None:
    assert math.isnan(one(epa_subindex, "o3_8h", np.array([0.201])))
    assert math.isnan(one(epa_subindex, "o3_1h", np.array([0.124])))
    assert math.isnan(one(epa_subindex, "so2", np.array([305.0])))  # 1 h defines up to 200
    assert math.isnan(one(epa_subindex, "so2_24h", np.array([304.0])))  # 24 h only above 200
    assert one(epa_subindex, "pm25", np.array([-0.3])) == 0.0
    with pytest.raises(ValueError, match="pm25_table"):
        epa_subindex("pm25", np.array([1.0]), pm25_table="2012")


@pytest.mark.parametrize(("ppb_1h", "ppb_24h", "expected"), [
    pytest.param(75.0, 900.0, 100, id="1h-table-below-305-ignores-the-day"),
    pytest.param(304.9, 900.0, 200, id="1h-304.9-truncates-to-304"),
    pytest.param(305.0, 305.0, 201, id="24h-305-201"),
    pytest.param(305.0, 200.0, 200, id="day-below-305-stays-200"),
    pytest.param(305.0, np.nan, 200, id="day-unknown-stays-200"),
    pytest.param(500.0, 400.0, 232, id="24h-400-232"),  # 99 / 299 * 95 + 201 = 232.45
    pytest.param(400.0, 604.0, 300, id="24h-604-300"),
    pytest.param(700.0, 605.0, 301, id="24h-605-301"),
    pytest.param(np.nan, 400.0, None, id="1h-unknown"),
])
def test_epa_so2_above_200_uses_the_24_hour_average(ppb_1h: float, ppb_24h: float,
                                                     expected: int | None) -> None:
    got = one(round_half_up, epa_so2_subindex(np.array([ppb_1h]), np.array([ppb_24h])))
    assert (None if math.isnan(got) else got) == expected


def test_ispu_averages_every_parameter_over_24_hours() -> None:
    hours = dict(ISPU_HOURS)  # P.14/2020: the table heads every parameter "24 jam"
    assert hours == dict.fromkeys(("pm10", "pm25", "so2", "co", "o3", "no2", "hc"), 24.0)


@pytest.mark.parametrize(("standard", "index", "cat"), [
    pytest.param("ispu", 0, 0, id="ispu-0"), pytest.param("ispu", 50, 0, id="ispu-50"),
    pytest.param("ispu", 51, 1, id="ispu-51"), pytest.param("ispu", 100, 1, id="ispu-100"),
    pytest.param("ispu", 101, 2, id="ispu-101"), pytest.param("ispu", 200, 2, id="ispu-200"),
    pytest.param("ispu", 201, 3, id="ispu-201"), pytest.param("ispu", 300, 3, id="ispu-300"),
    pytest.param("ispu", 301, 4, id="ispu-301"), pytest.param("epa", 50, 0, id="epa-50"),
    pytest.param("epa", 51, 1, id="epa-51"), pytest.param("epa", 100, 1, id="epa-100"),
    pytest.param("epa", 101, 2, id="epa-101"), pytest.param("epa", 150, 2, id="epa-150"),
    pytest.param("epa", 151, 3, id="epa-151"), pytest.param("epa", 200, 3, id="epa-200"),
    pytest.param("epa", 201, 4, id="epa-201"), pytest.param("epa", 300, 4, id="epa-300"),
    pytest.param("epa", 301, 5, id="epa-301"), pytest.param("epa", 650, 5, id="epa-650"),
])
def test_categories(standard: str, index: int, cat: int) -> None:
    assert int(category(np.array([float(index)]), standard)[0]) == cat


def test_category_names_and_colours() -> None:
    assert [c[1:3] for c in CATEGORIES["ispu"]] == [
        ("Baik", "green"), ("Sedang", "blue"), ("Tidak Sehat", "yellow"),
        ("Sangat Tidak Sehat", "red"), ("Berbahaya", "black")]
    assert [c[2] for c in CATEGORIES["epa"]] == [
        "green", "yellow", "orange", "red", "purple", "maroon"]
    assert category(np.array([np.nan]), "ispu").tolist() == [-1]


def test_unit_conversion() -> None:
    assert one(ppb_to_ugm3, "no2", np.array([1.0])) == pytest.approx(46.0055 / 24.45)
    assert one(ppb_to_ugm3, "co", np.array([1000.0])) == pytest.approx(1145.603, abs=1e-3)
    assert one(ugm3_to_ppb, "so2", ppb_to_ugm3("so2", np.array([75.0]))) == pytest.approx(75.0)


@pytest.mark.parametrize(("hours", "expected"), [
    pytest.param([30, 30, 30], 30.0, id="steady"),
    pytest.param([10, 20, np.nan], 13.3, id="two-of-three"),
    pytest.param([5, 50], 20.0, id="weight-floor-half"),
    pytest.param([20, 10, 10], (20 + 0.5 * 10 + 0.25 * 10) / 1.75, id="w-half-exact"),
    pytest.param([np.nan, np.nan, 10, 10], np.nan, id="too-few-recent"),
    pytest.param([0, 0, 0], 0.0, id="all-zero"),
])
def test_nowcast(hours: list[float], expected: float) -> None:
    h = np.full((1, 12), np.nan)
    h[0, :len(hours)] = hours
    got = float(nowcast(h)[0])
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(math.floor(round(expected * 10, 6)) / 10)


concs = st.lists(st.floats(0, 3000, allow_nan=False), min_size=2, max_size=50)


@given(concs)
def test_every_ispu_subindex_is_monotone(c: list[float]) -> None:
    x = np.sort(np.array(c))
    for p in ISPU_BOUNDS:
        assert (np.diff(ispu_subindex(p, x)) >= 0).all(), p


@given(concs)
def test_every_epa_subindex_is_monotone(c: list[float]) -> None:
    x = np.sort(np.array(c))
    for p in EPA_BANDS:
        scale = 1e-3 if p.startswith("o3") else (1e-2 if p == "co" else 1.0)
        ix = epa_subindex(p, x * scale)
        assert (np.diff(ix[~np.isnan(ix)]) >= 0).all(), p
    assert (np.diff(epa_subindex("pm25", x, pm25_table="pre2024")) >= 0).all()


@given(concs, concs)
def test_epa_so2_subindex_is_monotone_in_both_averages(c1: list[float], c24: list[float]) -> None:
    x, y = np.sort(np.array(c1)), np.sort(np.array(c24))
    for day in (0.0, 400.0, 800.0):
        assert (np.diff(epa_so2_subindex(x, np.full(len(x), day))) >= 0).all()
    for hour in (100.0, 305.0, 2000.0):
        assert (np.diff(epa_so2_subindex(np.full(len(y), hour), y)) >= 0).all()
