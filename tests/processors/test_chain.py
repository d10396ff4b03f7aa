"""The processor chain as the pipeline runs it: derived series ids, derived rows, quality rows,
tiers, and the state snapshot round trip (same results as an uninterrupted run)."""

from __future__ import annotations

import numpy as np
import pytest

from core.batch import FLAG_SPIKE, TelemetryBatch
from devices.registry import parse_registry
from devices.series import DerivedMetric, SeriesTable
from ingest.writer import coalesce
from processors import PROCESSORS, ProcessorContext, ProcessorError, build_chain
from processors.domain.capabilities import (
    Counting,
    Deferring,
    Deriving,
    Replayable,
    ReplayAware,
    Seeded,
    Stateful,
)
from processors.domain.derived import Tier
from processors.settings import ProcessorSettings

MIN = 60_000_000_000
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "kinds": {k: {"interval_s": 45} for k in ("river_gauge", "air_quality")},  # 1-min tier too
    "devices": [
        {"id": "wl-1", "kind": "river_gauge", "site": "s",
         "params": {"waspada_cm": 100, "siaga_cm": 200, "awas_cm": 300, "min_duration_s": 120},
         "metrics": {"level_cm": {"unit": "cm"}, "battery_v": {"unit": "V"}}},
        {"id": "wl-2", "kind": "river_gauge", "site": "s",
         "params": {"reference_height_cm": 500},
         "metrics": {"distance_cm": {"unit": "cm"}}},
        {"id": "aq-1", "kind": "air_quality", "site": "s",
         "metrics": {"pm25": {"unit": "ug/m3"}, "pm10": {"unit": "ug/m3"}}},
    ],
})
TABLE = SeriesTable.from_registry(REGISTRY)
L1, B1 = TABLE.lookup["wl-1"]["level_cm"], TABLE.lookup["wl-1"]["battery_v"]
D2 = TABLE.lookup["wl-2"]["distance_cm"]
PM25, PM10 = TABLE.lookup["aq-1"]["pm25"], TABLE.lookup["aq-1"]["pm10"]
DEFAULT = ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "tiers")
SETTINGS = ProcessorSettings(anomaly_warmup=3, anomaly_metrics=())  # z-scores for all metrics


def chain(names: tuple[str, ...] = DEFAULT):  # type: ignore[no-untyped-def]
    return build_chain(names, ProcessorContext(TABLE, settings=SETTINGS))


def stream(n: int = 12) -> TelemetryBatch:
    """n minutes of wl-1 rising through Waspada and Siaga (a jump at minute 6), wl-2's
    distance, and aq-1's PM."""
    minutes = np.arange(n)
    level = np.where(minutes < 6, 110.0 + minutes, 250.0 + minutes)
    ts = np.concatenate([minutes * MIN] * 5)
    series = np.repeat([L1, B1, D2, PM25, PM10], n)
    value = np.concatenate([level, np.full(n, 12.5), 400.0 - minutes, 20.0 + minutes,
                            60.0 + minutes])
    return TelemetryBatch.from_arrays(ts, series, value, origin=np.arange(5 * n) % 7)


def test_derived_metrics_get_series_ids_after_the_raw_ones() -> None:
    t = chain().table
    assert t is not None and t.raw == len(TABLE) and t.lookup == TABLE.lookup
    assert t.derived_names("wl-1") == ["level_cm_q", "battery_v_q", "flood_stage",
                                       "level_rise_cm_h", "level_cm_zscore", "battery_v_zscore"]
    assert "level_cm" in t.derived_names("wl-2")  # from the distance
    assert {"ispu", "ispu_category", "ispu_critical", "pm25_ispu", "pm10_ispu"} <= set(
        t.derived_names("aq-1"))
    stage = t.derived[("flood_stage", False)]
    assert t.key(int(stage[L1])) == ("wl-1", "flood_stage") and stage[B1] == -1
    # a device-level metric is one series whatever the source
    ispu = t.derived[("ispu", False)]
    assert ispu[PM25] == ispu[PM10] >= t.raw


def test_by_default_z_scores_cover_the_command_center_metrics_only() -> None:
    t = build_chain(DEFAULT, ProcessorContext(TABLE)).table
    assert t is not None
    zscores = [n for d in ("wl-1", "wl-2", "aq-1") for n in t.derived_names(d)
               if n.endswith("_zscore")]
    assert zscores == ["level_cm_zscore", "distance_cm_zscore", "pm25_zscore", "pm10_zscore"]


def test_a_derived_name_that_clashes_with_a_sent_metric_is_an_error() -> None:
    reg = parse_registry({"sites": [{"id": "s", "lat": 0, "lon": 0}], "devices": [
        {"id": "x", "kind": "k", "site": "s", "metrics": {"a": {"unit": ""},
                                                           "a_zscore": {"unit": ""}}}]})
    with pytest.raises(ProcessorError, match="device 'x': derived metric 'a_zscore'"):
        build_chain(["anomaly"], ProcessorContext(SeriesTable.from_registry(reg),
                                                  settings=SETTINGS))
    with pytest.raises(ValueError, match="'a'"):
        SeriesTable.from_registry(reg).with_derived([DerivedMetric("a", False,
                                                                   np.ones(2, bool))])


def test_run_returns_readings_derived_rows_and_tiers() -> None:
    c = chain()
    out = c.run(stream())
    t = c.table
    assert t is not None
    assert len(out.batch) == 60 and (out.batch.origin >= 0).all()
    d = out.derived
    assert (d.origin == -1).all() and d.ok.all() and np.isfinite(d.value).all()
    assert (d.series >= t.raw).all()
    by = {name: d.value[d.series == sid] for name, sid in
          (("stage", t.derived[("flood_stage", False)][L1]),
           ("level2", t.derived[("level_cm", False)][D2]))}
    assert by["stage"].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    # <metric>_q: the flags of exactly the flagged readings (the jump 115 -> 256 is a spike)
    q = d.series == t.derived[("q", True)][L1]
    flagged = out.batch.series == L1
    flagged &= out.batch.flags != 0
    assert d.ts_ns[q].tolist() == out.batch.ts_ns[flagged].tolist()
    assert d.value[q].tolist() == out.batch.flags[flagged].astype(float).tolist()
    assert int(d.value[q][d.ts_ns[q] == 6 * MIN][0]) & FLAG_SPIKE
    assert by["level2"].tolist() == [100.0 + m for m in range(12)]
    assert {tier.resolution_s for tier in out.tiers} == {60, 3600}
    hour = next(tier for tier in out.tiers if tier.resolution_s == 3600)
    assert hour.count.tolist() == [12] * 5 and hour.series.tolist() == [L1, B1, D2, PM25, PM10]


def test_deferred_tiers_are_the_coalesced_tiers_and_the_rest_is_unchanged() -> None:
    b = stream()
    parts = [b.take(np.arange(lo, hi)) for lo, hi in ((0, 17), (17, 40), (40, 60))]
    eager, lazy = chain(), chain()
    outs = [eager.run(p) for p in parts]
    lazy_outs = [lazy.run(p, defer_tiers=True) for p in parts]
    for o, lo in zip(outs, lazy_outs, strict=True):
        assert lo.tiers == ()
        assert o.batch.flags.tolist() == lo.batch.flags.tolist()
        assert o.derived.value.tolist() == lo.derived.value.tolist()
    # after a clean stop's flush, both stored the same final row of every bucket
    want = rows(coalesce([t for o in outs for t in o.tiers] + eager.flush_tiers(all_open=True)))
    got = rows(coalesce(lazy.flush_tiers() + lazy.flush_tiers(all_open=True)))
    assert {k[0] for k in want} == {60, 3600} and want.keys() == got.keys()
    for key, (mean, *rest) in want.items():
        assert got[key][1:] == tuple(rest) and got[key][0] == pytest.approx(mean, rel=1e-12)
    assert lazy.flush_tiers(all_open=True) == []


def rows(tiers: list[Tier]) -> dict[tuple[int, int, int], tuple[float, float, float, int]]:
    return {(t.resolution_s, int(s), int(ts)): (float(m), float(lo), float(hi), int(n))
            for t in tiers for ts, s, m, lo, hi, n in zip(t.ts_ns, t.series, t.mean, t.min,
                                                            t.max, t.count, strict=True)}


def test_windows_derive_per_series_fields() -> None:
    c = chain((*DEFAULT, "windows"))
    out = c.run(stream(3))
    assert c.table is not None
    sid = c.table.derived[("mean_5m", True)][L1]
    assert c.table.key(int(sid)) == ("wl-1", "level_cm_mean_5m")
    assert out.derived.value[out.derived.series == sid].tolist() == [110.0, 110.5, 111.0]


def test_state_round_trip_gives_the_uninterrupted_result() -> None:
    whole = chain().run(stream())
    first, second = chain(), chain()
    b = stream()
    early, late = b.ts_ns < 5 * MIN, b.ts_ns >= 5 * MIN
    head = first.run(b.take(early))
    second.restore({k: np.copy(v) for k, v in first.state().items()})
    tail = second.run(b.take(late))
    got = TelemetryBatch.concat([head.derived, tail.derived])
    w = whole.derived.take(np.lexsort((whole.derived.ts_ns, whole.derived.series)))
    g = got.take(np.lexsort((got.ts_ns, got.series)))
    assert (w.series.tolist(), w.ts_ns.tolist()) == (g.series.tolist(), g.ts_ns.tolist())
    np.testing.assert_allclose(g.value, w.value, rtol=1e-9)
    uninterrupted = chain()
    uninterrupted.run(stream())
    assert second.counts() == uninterrupted.counts() and second.counts()["spike"] >= 1


def test_a_snapshot_of_another_registry_or_chain_is_refused() -> None:
    state = chain().state()
    with pytest.raises(ProcessorError, match="another registry or processor chain"):
        chain(("quality", "flood")).restore(state)


def test_every_processor_is_buildable_from_settings() -> None:
    for name in PROCESSORS:
        build_chain([name], ProcessorContext(TABLE, settings=SETTINGS))


CAPABILITIES = {Deriving: {"flood", "aqi", "anomaly", "windows"},
                Stateful: {"quality", "flood", "aqi", "anomaly", "windows", "tiers"},
                Deferring: {"tiers"},
                Replayable: {"quality", "flood", "aqi", "anomaly", "windows", "tiers"},
                ReplayAware: {"quality", "aqi", "tiers"},
                Seeded: {"flood"},
                Counting: {"quality", "aqi"}}


@pytest.mark.parametrize("capability", [pytest.param(c, id=c.__name__) for c in CAPABILITIES])
def test_processors_state_what_they_offer_as_protocols(capability: type) -> None:
    ctx = ProcessorContext(TABLE, settings=SETTINGS)
    assert {n for n, make in PROCESSORS.items()
            if isinstance(make(ctx), capability)} == CAPABILITIES[capability]


def test_a_replay_starts_after_what_every_stateful_step_has_seen() -> None:
    c = chain((*DEFAULT, "windows"))
    assert (c.seen_ts() == np.iinfo(np.int64).min).all()  # fresh: nothing seen
    c.run(stream(3))
    assert c.seen_ts()[L1] == 2 * MIN  # flood, quality, anomaly, windows and tiers saw it
