"""Line protocol encoder: exact against a pure-Python reference, grouping, escaping, floats."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import TelemetryBatch
from core.reasons import Reason
from devices.registry import Device, Metric, Registry, Site
from devices.series import SeriesTable
from ingest.lineproto import (
    LineEncoder,
    TierEncoder,
    escape_key,
    escape_measurement,
    line_order,
)
from ingest.numtext import format_floats
from ingest.schema import TIER_FIELDS
from processors.domain.derived import Tier

T0 = 1_700_000_000_000_000_000


def device(did: str, kind: str, site: str, *metrics: str) -> Device:
    return Device(id=did, kind=kind, site=site, lat=0.0, lon=0.0, interval_s=60.0,
                  metrics=tuple(Metric(m, "u") for m in metrics))


TABLE = SeriesTable.from_registry(Registry(
    sites=(Site("kanigoro", "Kanigoro", 0.0, 0.0),),
    devices=(device("wl-01", "river_gauge", "kanigoro", "level_cm", "battery_v"),
             device("rg-01", "rain_gauge", "wlingi", "rain_mm"),
             device("aq-01", "air_quality", "kanigoro", "pm25", "pm10", "co"))))
ENC = LineEncoder(TABLE)
S = TABLE.lookup


def batch(rows: list[tuple[int, int, float]], status: list[int] | None = None) -> TelemetryBatch:
    b = TelemetryBatch.from_arrays([r[0] for r in rows], [r[1] for r in rows],
                                   [r[2] for r in rows])
    if status is not None:
        b.status[:] = status
    return b


# -- a pure-Python reference and a parser ------------------------------------------------------
Points = dict[tuple[int, int], dict[str, float]]


def render(table: SeriesTable, lines: Points) -> bytes:
    """One line per (device, time), fields by name; repr() values."""
    out = []
    for (di, t), fields in sorted(lines.items()):
        d = table.devices[di]
        body = ",".join(f"{escape_key(k)}={v!r}" for k, v in sorted(fields.items()))
        out.append(f"{escape_measurement(d.kind)},device={escape_key(d.id)},"
                   f"site={escape_key(d.site)} {body} {t}\n")
    return "".join(out).encode()


def reference(table: SeriesTable, b: TelemetryBatch) -> bytes:
    """The OK readings, later duplicates winning."""
    lines: Points = {}
    for t, s, v, status in zip(b.ts_ns.tolist(), b.series.tolist(), b.value.tolist(),
                               b.status.tolist(), strict=True):
        if status == Reason.OK:
            lines.setdefault((int(table.device_index[s]), t), {})[table.metric[s]] = v
    return render(table, lines)


def tier_reference(table: SeriesTable, tier: Tier) -> bytes:
    lines: Points = {}
    for t, s, *stats in zip(tier.ts_ns.tolist(), tier.series.tolist(), tier.mean.tolist(),
                            tier.min.tolist(), tier.max.tolist(), tier.count.tolist(),
                            strict=True):
        fields = lines.setdefault((int(table.device_index[s]), t), {})
        fields.update({f"{table.metric[s]}_{name}": float(v)
                       for name, v in zip(TIER_FIELDS, stats, strict=True)})
    return render(table, lines)


_UNESCAPED = re.compile(r"(?<!\\)[ ]")


def split_unescaped(text: str, sep: str) -> list[str]:
    return re.split(rf"(?<!\\){re.escape(sep)}", text)


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse(body: bytes) -> tuple[set[tuple[str, tuple[tuple[str, str], ...], str, str, int]],
                                list[tuple[str, tuple[tuple[str, str], ...], int]]]:
    """(set of (measurement, tags, field, value text, ts), the (series key, ts) of each line)."""
    points, keys = set(), []
    for line in body.decode().split("\n")[:-1]:
        series, fields, ts = _UNESCAPED.split(line)
        measurement, *tags = split_unescaped(series, ",")
        tag_pairs = tuple(tuple(unescape(x) for x in split_unescaped(t, "=")) for t in tags)
        keys.append((unescape(measurement), tag_pairs, int(ts)))  # type: ignore[arg-type]
        for f in split_unescaped(fields, ","):
            k, v = split_unescaped(f, "=")
            points.add((unescape(measurement), tag_pairs, unescape(k), v, int(ts)))
    return points, keys  # type: ignore[return-value]


# -- examples ---------------------------------------------------------------------------------
def test_one_line_per_device_and_time_with_fields_by_name() -> None:
    b = batch([(T0, S["wl-01"]["level_cm"], 123.4), (T0, S["wl-01"]["battery_v"], 3.9)])
    assert ENC.encode(b) == (b"river_gauge,device=wl-01,site=kanigoro "
                             b"battery_v=3.9,level_cm=123.4 1700000000000000000\n")


def test_lines_are_grouped_across_an_interleaved_batch() -> None:
    rows = [(T0 + (i % 3), S[d][m], float(i)) for i, (d, m) in enumerate(
        [("aq-01", "co"), ("wl-01", "level_cm"), ("aq-01", "pm25"), ("rg-01", "rain_mm"),
         ("wl-01", "battery_v"), ("aq-01", "pm10")] * 3)]
    body = ENC.encode(batch(rows))
    assert body == reference(TABLE, batch(rows))
    _, keys = parse(body)
    assert len(keys) == len(set(keys)) == len({(TABLE.device_index[s], t) for t, s, _ in rows})


@pytest.mark.parametrize("status", [
    pytest.param([0, 0, 0], id="all-ok"),
    pytest.param([0, Reason.OUT_OF_RANGE, 0], id="one-rejected"),
    pytest.param([Reason.DUPLICATE, 0, Reason.NOT_FINITE], id="duplicate-and-rejected"),
    pytest.param([Reason.BAD_SCHEMA] * 3, id="none-ok"),
])
def test_only_ok_rows_are_written(status: list[int]) -> None:
    rows = [(T0, S["wl-01"]["level_cm"], 1.5), (T0, S["wl-01"]["battery_v"], math.nan),
            (T0 + 1, S["rg-01"]["rain_mm"], 0.25)]
    b = batch(rows, status)
    if status[1] == 0:
        b.value[1] = 4.0
    assert ENC.encode(b) == reference(TABLE, b)
    assert ENC.encode(b) == ENC.encode(b.take(b.ok))        # pre-filtered: same bytes


def test_empty_batch_is_empty_bytes() -> None:
    assert ENC.encode(TelemetryBatch.empty()) == b""


def test_the_later_of_two_readings_of_one_series_and_time_wins() -> None:
    level = S["wl-01"]["level_cm"]
    b = batch([(T0, level, 1.0), (T0, S["wl-01"]["battery_v"], 3.0), (T0, level, 2.0)])
    assert ENC.encode(b) == (b"river_gauge,device=wl-01,site=kanigoro "
                             b"battery_v=3.0,level_cm=2.0 1700000000000000000\n")


def test_encode_rows_takes_a_subset() -> None:
    rows = [(T0 + i, S["wl-01"]["level_cm"], float(i)) for i in range(6)]
    b = batch(rows, [0, 0, Reason.OUT_OF_RANGE, 0, 0, 0])
    assert ENC.encode_rows(b, np.arange(3)) == reference(TABLE, b.take(np.arange(3)))
    assert ENC.encode_rows(b, np.arange(6) >= 3) == reference(TABLE, b.take(np.arange(3, 6)))


@pytest.mark.parametrize("ts", [
    pytest.param(0, id="epoch"), pytest.param(-1_500_000_000, id="before-1970"),
    pytest.param(9_223_372_036_854_775_806, id="int64-max-minus-1"),
    pytest.param(7, id="one-digit")])
def test_timestamps_are_exact(ts: int) -> None:
    assert ENC.encode(batch([(ts, 0, 1.0)])).endswith(f" {ts}\n".encode())


def test_non_finite_ok_value_is_refused() -> None:
    with pytest.raises(ValueError, match="not a finite value"):
        ENC.encode(batch([(T0, 0, math.inf)]))


def test_identifiers_are_escaped() -> None:
    assert escape_measurement("river gauge,x=1") == r"river\ gauge\,x=1"
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    with pytest.raises(ValueError, match="cannot be written"):
        escape_key("two\nlines")
    odd = SeriesTable.from_registry(Registry(sites=(), devices=(
        device("wl 01,x", "river gauge", "site=a b", "level_cm"),)))
    body = LineEncoder(odd).encode(batch([(T0, 0, 2.5)]))
    assert body == b"river\\ gauge,device=wl\\ 01\\,x,site=site\\=a\\ b level_cm=2.5 " \
                   b"1700000000000000000\n"
    assert parse(body)[0] == {("river gauge", (("device", "wl 01,x"), ("site", "site=a b")),
                               "level_cm", "2.5", T0)}


@pytest.mark.parametrize("value", [
    0.0, -0.0, 0.1, 0.30000000000000004, 3.0, -12.5, 1e-4, 1e-05, 5e-324, 2.0**53 + 2,
    1e15, 1e16, 9999999999999998.0, 123456789012345.6, 1.7976931348623157e308,
    162.52099336279719, 100.10537475584375, 2.2250738585072014e-308])
def test_float_examples_match_repr(value: float) -> None:
    row = format_floats(np.array([value]))[0]
    assert bytes(row[row != 0]).decode() == repr(value)


# -- properties -------------------------------------------------------------------------------
finite = st.floats(allow_nan=False, allow_infinity=False)
# what devices and aggregates produce, at every magnitude: few decimals, means of those
magnitude = st.integers(-8, 17).map(lambda e: 10.0 ** e)
few_decimals = st.builds(lambda v, m, d: round(v * m, d), st.floats(-10, 10), magnitude,
                         st.integers(0, 8))
means = st.lists(few_decimals, min_size=2, max_size=12).map(lambda xs: sum(xs) / len(xs))
values = st.one_of(finite, few_decimals, means, st.sampled_from(
    [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e15, 1e16, 9999999999999998.0, 5e-324]))
timestamps = st.sampled_from([T0, T0 + 1, T0 + 60_000_000_000, T0 + 3_600_000_000_000, -5, 0,
                              -(2**62), 2**63 - 1])


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60))
def test_floats_are_shortest_repr_and_round_trip(values: list[float]) -> None:
    m = format_floats(np.array(values, dtype=np.float64))
    texts = [bytes(r[r != 0]).decode() for r in m]
    assert texts == [repr(v) for v in values]
    assert [float(t) for t in texts] == values


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([T0, T0 + 1, T0 + 60_000_000_000, -5, 0]),
    st.integers(0, len(TABLE) - 1),
    st.one_of(finite, st.floats(-1e4, 1e4).map(lambda v: round(v, 2))),
    st.sampled_from([0, 0, 0, Reason.OUT_OF_RANGE, Reason.DUPLICATE])), max_size=80))
def test_matches_the_reference_encoder(rows: list[tuple[int, int, float, int]]) -> None:
    b = batch([r[:3] for r in rows], [r[3] for r in rows])
    body, ref = ENC.encode(b), reference(TABLE, b)
    assert parse(body)[0] == parse(ref)[0]
    assert body == ref                                       # same grouping and order too
    _, keys = parse(body)
    assert len(keys) == len(set(keys))                       # one line per (device, time)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=60))
def test_sensor_values_and_means_are_shortest_repr(vs: list[float]) -> None:
    m = format_floats(np.array(vs, dtype=np.float64))
    assert [bytes(r[r != 0]).decode() for r in m] == [repr(v) for v in vs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(timestamps, st.integers(0, len(TABLE) - 1), values), max_size=80))
def test_mixed_values_and_time_spans_match_the_reference(
        rows: list[tuple[int, int, float]]) -> None:
    b = batch(rows)
    assert ENC.encode(b) == reference(TABLE, b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([T0 + h * 3_600_000_000_000 for h in range(4)]
                                          + [-3_600_000_000_000, 0]),
                          st.integers(0, len(TABLE) - 1), values, values, values,
                          st.integers(0, 10**6)), max_size=40))
def test_tiers_match_the_reference(rows: list[tuple[int, int, float, float, float, int]]
                                   ) -> None:
    tier = Tier(3600, *(np.array([r[i] for r in rows], dtype=dt) for i, dt in enumerate(
        [np.int64, np.int32, np.float64, np.float64, np.float64, np.int64])))
    assert TierEncoder(TABLE).encode(tier) == tier_reference(TABLE, tier)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), timestamps, st.integers(0, 7)), min_size=1,
                max_size=40),
       st.sampled_from([(3, 3), (27, 27), (31, 31), (40, 24)]))
def test_line_order_is_a_stable_lexsort(rows: list[tuple[int, int, int]],
                                        bits: tuple[int, int]) -> None:
    """Whichever way the key is packed: time in full, in steps, ranked, or not at all."""
    dev, ts, rank = (np.array(c, dtype=dt) for c, dt in zip(
        zip(*rows, strict=True), (np.int32, np.int64, np.int32), strict=True))
    assert line_order(dev, ts, rank, bits).tolist() == np.lexsort((rank, ts, dev)).tolist()


def test_large_batches_match_the_reference() -> None:
    """Beyond a megabyte of records, compacted in slices; duplicates and rejected rows."""
    rng = np.random.default_rng(7)
    n = 30_000
    kind = rng.integers(0, 4, n)
    value = np.select([kind == 0, kind == 1, kind == 2], [
        np.round(rng.normal(50, 20, n), 1), np.round(rng.normal(0, 1, (n, 7)), 2).mean(1),
        rng.normal(0, 1, n) * 10.0 ** rng.integers(-6, 20, n)], rng.integers(-99, 99, n))
    b = batch(list(zip(T0 + rng.integers(-50, 50, n) * 1_000_000_000,
                       rng.integers(0, len(TABLE), n).tolist(), value.tolist(), strict=True)),
              rng.choice([0, 0, 0, Reason.OUT_OF_RANGE], n).tolist())
    assert ENC.encode(b) == reference(TABLE, b)
    tier = Tier(60, b.ts_ns // 60_000_000_000 * 60_000_000_000, b.series, value, value * 2,
                value / 3, rng.integers(0, 100, n))
    assert TierEncoder(TABLE).encode(tier) == tier_reference(TABLE, tier)


def test_a_fleet_shares_its_field_heads_and_matches_the_reference() -> None:
    """Many devices of a few kinds: the heads are per field name (2 per name), not per series
    (at 100,000 devices those were 200 MB), and the lines are those of the reference."""
    kinds = {"river_gauge": ("level_cm", "battery_v"), "air_quality": ("pm25", "pm10", "co")}
    table = SeriesTable.from_registry(Registry(
        sites=(Site("kanigoro", "Kanigoro", 0.0, 0.0),),
        devices=tuple(device(f"d-{i:04d}", kind, "kanigoro", *metrics) for i in range(600)
                      for kind, metrics in [list(kinds.items())[i % 2]])))
    enc, tiers = LineEncoder(table), TierEncoder(table)
    assert len(enc._heads) == 2 * 5 and len(tiers._lines._heads) == 2 * 5 * len(TIER_FIELDS)
    rng = np.random.default_rng(3)
    n = 5_000
    b = batch(list(zip((T0 + rng.integers(0, 4, n) * 60_000_000_000).tolist(),
                       rng.integers(0, len(table), n).tolist(),
                       np.round(rng.normal(0, 50, n), 2).tolist(), strict=True)))
    assert enc.encode(b) == reference(table, b)
    tier = Tier(60, b.ts_ns, b.series, b.value, b.value - 1, b.value + 1, np.ones(n))
    assert tiers.encode(tier) == tier_reference(table, tier)
