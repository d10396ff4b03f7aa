"""Recalibration of stored data: inverting the old factors per period, applying the new ones,
finding the segments where two registries disagree, and refusing when they do not."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from devices.calibration import CalibrationPeriod
from devices.recalibrate_plan import (
    END_NS,
    RecalibrationError,
    Segment,
    differing_segments,
    iso,
    load_old_registry,
    make_plan,
    parse_instant,
    periods,
    recalibrated,
)
from devices.registry import Metric, Registry, load_registry
from ingest.errors import SinkError
from ingest.recalibrate import Summary, _write
from pantau.cli import main


def ns(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def P(day: str, gain: float, offset: float) -> CalibrationPeriod:
    return CalibrationPeriod(ns(day), gain, offset)


JAN, FEB, MAR, APR = (ns(f"2026-0{m}-01") for m in (1, 2, 3, 4))
OLD = (P("2026-01-01", 1.0, -12.0), P("2026-03-01", 0.98, -10.0))
# corrected: a sensor swap on Feb 1 was missing; the March offset was wrong
NEW = (P("2026-01-01", 1.0, -12.0), P("2026-02-01", 1.02, -11.0), P("2026-03-01", 0.98, -9.5))


@pytest.mark.parametrize(("ts", "old", "new", "changed"), [
    pytest.param([JAN - 1, JAN, FEB - 1], OLD, NEW, [False, False, False],
                 id="before-and-in-an-unchanged-period"),
    pytest.param([FEB, FEB + 1, MAR - 1], OLD, NEW, [True, True, True],
                 id="inserted-period"),
    pytest.param([MAR, APR], OLD, NEW, [True, True], id="corrected-offset"),
    pytest.param([JAN - 1, FEB, MAR], (), NEW, [False, True, True],
                 id="old-uncalibrated"),
    pytest.param([JAN - 5, JAN, MAR], NEW, (), [False, True, True],
                 id="calibration-removed"),
    pytest.param([JAN, FEB, APR], OLD, OLD, [False, False, False], id="same-registry"),
])
def test_recalibrated_inverts_old_and_applies_new_per_period(
        ts: list[int], old: tuple[CalibrationPeriod, ...], new: tuple[CalibrationPeriod, ...],
        changed: list[bool]) -> None:
    t = np.array(ts, dtype=np.int64)
    raw = np.array([100.0 + i * 7.25 for i in range(len(ts))])

    def apply(periods_: tuple[CalibrationPeriod, ...], at: int, x: float) -> float:
        g, o = 1.0, 0.0
        for p in periods_:
            if p.start_ns <= at:
                g, o = p.gain, p.offset
        return x * g + o

    stored = np.array([apply(old, a, x) for a, x in zip(ts, raw, strict=True)])
    value, mask = recalibrated(t, stored, old, new)
    assert mask.tolist() == changed
    expected = [apply(new, a, x) for a, x in zip(ts, raw, strict=True)]
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert (value[~mask] == stored[~mask]).all()        # untouched, bit for bit


def test_recalibrated_is_the_documented_formula_exactly() -> None:
    t = np.array([FEB + 60 * 10**9, MAR + 60 * 10**9], dtype=np.int64)
    stored = np.array([88.125, 131.5])
    value, _ = recalibrated(t, stored, OLD, NEW)
    assert value.tolist() == [(88.125 + 12.0) / 1.0 * 1.02 + -11.0,
                              (131.5 + 10.0) / 0.98 * 0.98 + -9.5]


@pytest.mark.parametrize(("since", "until", "segments"), [
    pytest.param(JAN, END_NS, (Segment(FEB, MAR, (1.0, -12.0), (1.02, -11.0)),
                               Segment(MAR, END_NS, (0.98, -10.0), (0.98, -9.5))),
                 id="whole-history"),
    pytest.param(FEB + 5, MAR + 7, (Segment(FEB + 5, MAR, (1.0, -12.0), (1.02, -11.0)),
                                    Segment(MAR, MAR + 7, (0.98, -10.0), (0.98, -9.5))),
                 id="clipped-to-the-period"),
    pytest.param(JAN, FEB, (), id="only-an-unchanged-period"),
    pytest.param(ns("2025-06-01"), JAN, (), id="before-any-period"),
])
def test_differing_segments(since: int, until: int, segments: tuple[Segment, ...]) -> None:
    assert differing_segments(OLD, NEW, since, until) == segments


def test_adjacent_segments_with_the_same_factors_merge() -> None:
    old = (P("2026-01-01", 1.0, 0.0), P("2026-02-01", 1.0, 0.0))   # a no-op boundary
    assert differing_segments(old, (P("2026-01-01", 2.0, 0.0),), JAN, APR) == (
        Segment(JAN, APR, (1.0, 0.0), (2.0, 0.0)),)


def test_plain_gain_offset_is_one_period_forever() -> None:
    m = Metric("level_cm", "cm", gain=2.0, offset=1.0)
    value, changed = recalibrated(np.array([0, JAN], dtype=np.int64), np.array([5.0, 7.0]),
                                  periods(m), ())
    assert value.tolist() == [2.0, 3.0] and changed.all()


REGISTRY = """\
sites:
  - {id: kanigoro, lat: -8.13, lon: 112.21}
kinds:
  river_gauge:
    metrics:
      level_cm: {unit: cm, min: 0, max: 1500}
      battery_v: {unit: V}
devices:
  - id: wl-1
    kind: river_gauge
    site: kanigoro
    owner: BPBD Kabupaten Blitar
    contact: "+62 342 000000"
    tags: {district: kanigoro}
    metrics:
      level_cm:
        calibration:
%s
"""


def registry(tmp_path: Path, name: str, periods_yaml: str) -> Registry:
    p = tmp_path / name
    p.write_text(REGISTRY % periods_yaml)
    return load_registry(p)


OLD_YAML = "          - {from: 2026-01-01, gain: 1.0, offset: -12}"
NEW_YAML = OLD_YAML + "\n          - {from: 2026-02-01, gain: 1.02, offset: -11, note: swap}"


def test_plan_picks_the_metrics_that_differ(tmp_path: Path) -> None:
    old, new = registry(tmp_path, "old.yaml", OLD_YAML), registry(tmp_path, "new.yaml", NEW_YAML)
    plan = make_plan(old, new, "wl-1", [], JAN, APR)
    assert [m.metric.name for m in plan.metrics] == ["level_cm"]
    assert plan.span == (FEB, APR)


@pytest.mark.parametrize(("device", "metrics", "since", "until", "message"), [
    pytest.param("wl-1", [], JAN, FEB, r"same calibration for level_cm, battery_v.*nothing",
                 id="no-difference-in-the-period"),
    pytest.param("wl-1", ["battery_v"], JAN, APR, r"metric 'battery_v'.*same calibration",
                 id="named-metric-without-difference"),
    pytest.param("wl-1", ["rain_mm"], JAN, APR, r"metric 'rain_mm' is not in", id="no-metric"),
    pytest.param("wl-9", [], JAN, APR, r"device 'wl-9' is not in", id="no-device"),
    pytest.param("wl-1", [], APR, JAN, r"--since must be before --until", id="empty-period"),
])
def test_plan_refuses(tmp_path: Path, device: str, metrics: list[str], since: int, until: int,
                      message: str) -> None:
    old, new = registry(tmp_path, "old.yaml", OLD_YAML), registry(tmp_path, "new.yaml", NEW_YAML)
    with pytest.raises(RecalibrationError, match=message):
        make_plan(old, new, device, metrics, since, until)


def test_cli_refuses_when_nothing_differs(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    registry(tmp_path, "old.yaml", OLD_YAML)
    registry(tmp_path, "new.yaml", NEW_YAML)
    assert main(["devices", "--registry", str(tmp_path / "new.yaml"), "recalibrate", "wl-1",
                 "--since", "2026-01-01", "--until", "2026-02-01", "--old-registry",
                 str(tmp_path / "old.yaml")]) == 2
    assert "nothing to recalibrate" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("2026-03-01", MAR, id="date-is-utc-midnight"),
    pytest.param("2026-03-01T07:00:00+07:00", MAR, id="zoned"),
    pytest.param("2026-03-01T00:00:00.000001Z", MAR + 1000, id="microseconds"),
    pytest.param(str(MAR + 1), MAR + 1, id="epoch-ns"),
])
def test_parse_instant_and_iso_round_trip(text: str, expected: int) -> None:
    assert parse_instant(text) == expected
    assert parse_instant(iso(expected)) == expected


@pytest.mark.parametrize("text", ["2026-03-01T00:00:00", "yesterday"])
def test_parse_instant_refuses(text: str) -> None:
    with pytest.raises(RecalibrationError):
        parse_instant(text)


def test_show_prints_owner_contact_tags_and_calibration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry(tmp_path, "new.yaml", NEW_YAML)
    assert main(["devices", "--registry", str(tmp_path / "new.yaml"), "show", "wl-1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["owner"], shown["contact"]) == ("BPBD Kabupaten Blitar", "+62 342 000000")
    assert shown["tags"] == {"district": "kanigoro"}
    assert shown["metrics"]["level_cm"]["calibration"] == [
        {"from": "2026-01-01T00:00:00Z", "gain": 1.0, "offset": -12.0, "note": ""},
        {"from": "2026-02-01T00:00:00Z", "gain": 1.02, "offset": -11.0, "note": "swap"}]
    assert shown["metrics"]["battery_v"]["calibration"] == []


def test_old_registry_from_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(REGISTRY % OLD_YAML))
    old = load_old_registry("-")
    assert old.source == "<stdin>" and old.device("wl-1") is not None


def test_a_failed_page_is_retried_then_reported_with_where_to_resume() -> None:
    calls: list[int] = []

    async def flaky(batch: TelemetryBatch) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise SinkError("InfluxDB down", retryable=True, retry_after=0.0)

    batch = TelemetryBatch.from_arrays([FEB], [0], [1.0])
    asyncio.run(_write(flaky, batch, 3, Summary(), FEB))
    assert calls == [1, 1]                              # rewriting the same page is harmless

    async def refused(batch: TelemetryBatch) -> None:
        raise SinkError("HTTP 400 partial write", retryable=False, status=400)

    with pytest.raises(RecalibrationError, match=r"Stopped after 5 of 9 points: points before "
                       r"2026-02-01T00:00:00Z are corrected.*--since 2026-02-01T00:00:00Z\..*"
                       r"may have stored part of its page"):
        asyncio.run(_write(refused, batch, 3, Summary(total=9, done=5), FEB))
    with pytest.raises(RecalibrationError, match="Nothing was rewritten"):
        asyncio.run(_write(refused, batch, 3, Summary(total=9), FEB))
