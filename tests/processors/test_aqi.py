"""AirQuality processor: averaging periods, index = max sub-index, critical pollutant, category,
unit conversion for EPA gases, NowCast, staleness, split invariance and state round trip."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.registry import parse_registry
from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from processors.aqi import POLLUTANTS, AirQuality
from processors.domain.aqi_tables import ppb_to_ugm3
from processors.domain.derived import Output

H = 3_600_000_000_000
GASES = ("pm25", "pm10", "so2", "co", "o3", "no2")
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "devices": [{"id": f"aq{i}", "kind": "aq", "site": "s",
                 "metrics": {**{g: {"unit": "ug/m3"} for g in GASES},
                             "temperature_c": {"unit": "C"}}} for i in range(2)],
})
TABLE = SeriesTable.from_registry(REGISTRY)
SID = {g: TABLE.lookup["aq0"][g] for g in GASES}


def feed(p: AirQuality, rows: list[tuple[float, str, float]]) -> Output:
    """rows: (hour, metric of aq0, µg/m³)."""
    return p.step(TelemetryBatch.from_arrays([int(h * H) for h, _, _ in rows],
                                             [SID[m] for _, m, _ in rows], [v for *_, v in rows]))


def station(out: Output, name: str) -> list[float]:
    return [float(x) for x in out.get(name, per_series=False).value]


def test_ispu_uses_the_24_hour_mean() -> None:
    out = feed(AirQuality(TABLE), [(h, "pm25", 10.0 if h < 12 else 21.0) for h in range(24)])
    assert out.get("ispu", per_series=True).metric_names(TABLE)[0] == "pm25_ispu"
    assert station(out, "ispu")[-1] == 50.0  # mean 15.5
    assert station(out, "ispu")[0] == pytest.approx(round(10 / 15.5 * 50))
    assert station(out, "ispu_category")[-1] == 0.0


def test_index_is_the_max_and_names_the_critical_pollutant() -> None:
    out = feed(AirQuality(TABLE), [(0, "pm25", 15.5), (0, "so2", 180.0), (0, "co", 100.0)])
    assert station(out, "ispu") == [100.0]
    assert station(out, "ispu_critical") == [POLLUTANTS.index("so2")]
    assert station(out, "ispu_category") == [1.0]
    assert out.get("ispu", per_series=True).value.tolist() == [50.0, 100.0, 1.0]


def test_stale_sub_index_drops_out_of_the_index() -> None:
    p = AirQuality(TABLE, max_age_s=3 * 3600)
    feed(p, [(0, "so2", 400.0)])
    assert station(feed(p, [(2, "pm25", 15.5)]), "ispu") == [200.0]
    assert station(feed(p, [(4, "pm25", 15.5)]), "ispu") == [50.0]


@pytest.mark.parametrize(("metric", "ugm3", "aqi"), [
    pytest.param("o3", float(ppb_to_ugm3("o3", np.array(70.0))), 100, id="o3-8h-0.070ppm"),
    pytest.param("so2", float(ppb_to_ugm3("so2", np.array(75.0))), 100, id="so2-75ppb"),
    pytest.param("no2", float(ppb_to_ugm3("no2", np.array(101.0))), 101, id="no2-101ppb"),
    pytest.param("co", float(ppb_to_ugm3("co", np.array(9400.0))), 100, id="co-9.4ppm"),
    pytest.param("pm25", 35.4, 100, id="pm25"),
])
def test_epa_converts_gases_to_ppm_or_ppb(metric: str, ugm3: float, aqi: int) -> None:
    out = feed(AirQuality(TABLE, standard="aqi"), [(0, metric, ugm3)])
    assert station(out, "aqi") == [aqi]


def test_epa_o3_takes_the_larger_of_8h_and_1h() -> None:
    high = float(ppb_to_ugm3("o3", np.array(405.0)))  # 1-hour 0.405 ppm -> 301
    out = feed(AirQuality(TABLE, standard="aqi"), [(h / 2, "o3", 0.0) for h in range(14)]
               + [(7.5, "o3", high)])
    # 1-hour window (6.5 h, 7.5 h]: 0.405 ppm -> 301; 8-hour mean 0.027 ppm -> 25
    assert station(out, "aqi")[-1] == 301.0


def test_epa_nowcast_from_hourly_means() -> None:
    rows = [(h + 0.5, "pm25", 20.0) for h in range(12)] + [(11.9, "pm25", 20.0)]
    rows += [(h + 0.5, "pm10", 10.0 if h < 11 else 50.0) for h in range(12)]
    out = feed(AirQuality(TABLE, standard="aqi"), sorted(rows))
    nc = out.get("nowcast", per_series=True)
    assert dict(zip(nc.metric_names(TABLE), nc.value.tolist(), strict=True)) == {
        "pm25_nowcast": 20.0, "pm10_nowcast": float(int((50 + 10 * sum(
            0.5 ** k for k in range(1, 12))) / sum(0.5 ** k for k in range(12))))}


def test_bad_standard() -> None:
    with pytest.raises(ValueError, match="standard"):
        AirQuality(TABLE, standard="caqi")


# Stations report in time order: (hours since previous message, metric, value).
msgs = st.lists(st.tuples(st.sampled_from([0.0, 0.25, 1.0, 5.0]), st.sampled_from(GASES),
                          st.floats(0, 600)), min_size=1, max_size=60)


def run(p: AirQuality, rows: list[tuple[float, str, float]], cuts: list[int], t0: float = 0
        ) -> dict[tuple[str, bool, int, int], float]:
    hours = t0 + np.cumsum([r[0] for r in rows])
    b = TelemetryBatch.from_arrays((hours * H).astype(np.int64), [SID[r[1]] for r in rows],
                                   [r[2] for r in rows])
    got: dict[tuple[str, bool, int, int], float] = {}
    edges = [0, *sorted(c % (len(b) + 1) for c in cuts), len(b)]
    for lo, hi in pairwise(edges):
        for d in p.step(b.take(np.arange(lo, hi))).derived:
            if d.name != "nowcast":
                # a station-level value is keyed by its device, whichever series anchors it
                key = d.source if d.per_series else TABLE.device_index[d.source]
                got.update({(d.name, d.per_series, k, t): v for k, t, v in zip(
                    key.tolist(), d.ts_ns.tolist(), d.value.tolist(), strict=True)})
    return got


@settings(max_examples=80, deadline=None)
@given(msgs, st.lists(st.integers(0, 60), max_size=5), st.sampled_from(["ispu", "aqi"]))
def test_same_result_in_one_batch_or_many(rows: list[tuple[float, str, float]],
                                          cuts: list[int], std: str) -> None:
    one = run(AirQuality(TABLE, standard=std), rows, [])
    many = run(AirQuality(TABLE, standard=std), rows, cuts)
    # A station's index at a timestamp is rewritten as more of that message arrives: last wins.
    assert one == pytest.approx(many, nan_ok=True)


@settings(max_examples=40, deadline=None)
@given(msgs, msgs)
def test_state_round_trip(first: list[tuple[float, str, float]],
                          second: list[tuple[float, str, float]]) -> None:
    a = AirQuality(TABLE)
    run(a, first, [])
    b = AirQuality(TABLE)
    b.restore({k: v.copy() for k, v in a.state().items()})
    assert run(a, second, [], t0=1000) == pytest.approx(run(b, second, [], t0=1000), nan_ok=True)
