"""Compiled checks are columnar, and each slot is what the per-device definition says: the
series and devices a rule selects, its levels, its labels and `alert_id` of those labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alerts.compile import Check, alert_id, compile_rules
from alerts.rules import SERIES_KINDS, Bound, Rule
from devices.catalogue import load_rivers
from devices.registry import Device, default_registry_path, load_registry
from devices.series import SeriesTable
from devices.simulator.fleet import grow
from ingest.settings import IngestSettings
from processors import ProcessorContext, build_chain
from tests.alerts.helpers import rules

EXTRA = {"rules": [
    {"name": "Rising", "kind": "rate", "metric": "level_cm", "rate_above": 30, "clear": 10,
     "devices": {"kind": "river_gauge"}},
    {"name": "One", "kind": "rate", "metric": "level_cm", "rate_above": 30,
     "devices": {"id": "wl-brantas-wlingi"}},
    {"name": "Waspada", "kind": "threshold", "metric": "level_cm",
     "above": {"param": "waspada_cm"}, "clear": {"param": "base_level_cm"},
     "devices": {"tags": {"river": "brantas"}}},
    {"name": "Dry", "kind": "threshold", "metric": "level_cm", "below": {"param": "base_level_cm"}},
    {"name": "Kanigoro", "kind": "threshold", "metric": "battery_v", "below": 11,
     "devices": {"site": ["kanigoro", "wlingi"]}},
    {"name": "Flagged", "kind": "quality", "flags": ["stuck", "spike"], "for": "1h"},
    {"name": "StuckLevel", "kind": "quality", "metric": "level_cm", "flags": ["stuck"]},
    {"name": "GaugeOffline", "kind": "offline", "devices": {"kind": "river_gauge"}},
]}


@pytest.fixture(scope="module")
def compiled() -> tuple[SeriesTable, list[Check]]:
    path = default_registry_path()
    base = load_registry(path)
    registry, _ = grow(base, load_rivers(path, base), 400)
    table = build_chain(IngestSettings().processors,
                        ProcessorContext(SeriesTable.from_registry(registry))).table
    return table, compile_rules(rules(), table) + compile_rules(rules(EXTRA), table)


def _naive_slots(rule: Rule, table: SeriesTable) -> list[int]:
    """The definition, one series at a time: the rule's metric (every raw one for a quality
    rule without one) on a selected device whose levels are defined."""
    out = []
    for s in range(len(table)):
        d = table.devices[int(table.device_index[s])]
        if not rule.devices.matches(d):
            continue
        if not (table.metric[s] == rule.metric if rule.metric else s < table.raw):
            continue
        if any(b is not None and not math.isfinite(b.of(d)) for b in (rule.level, rule.clear)):
            continue
        out.append(s)
    return out


def _naive_levels(c: Check, d: Device | None) -> tuple[float, float]:
    rule = c.rule
    if c.level is not None:
        return c.level.at, c.level.at
    if rule.kind == "rate":
        return rule.rate_above, rule.clear.value if rule.clear is not None else rule.rate_above
    level = rule.level or Bound(value=1.0)
    hi = level.of(d) if d is not None else level.value
    lo = hi if rule.clear is None else rule.clear.of(d) if d is not None else rule.clear.value
    return rule.sign * hi, rule.sign * lo


def test_slots_and_levels_are_those_of_the_definition(
        compiled: tuple[SeriesTable, list[Check]]) -> None:
    table, checks = compiled
    assert {c.rule.name for c in checks} >= {"FloodStage", "Waspada", "Dry", "GaugeOffline"}
    for c in checks:
        if c.rule.kind in SERIES_KINDS:
            assert c.series.tolist() == _naive_slots(c.rule, table), c.rule.name
            assert (c.device == table.device_index[c.series]).all()
        elif c.rule.kind == "offline":
            assert c.device.tolist() == [i for i, d in enumerate(table.devices)
                                         if c.rule.devices.matches(d)]
        else:
            assert c.series.tolist() == c.device.tolist() == [-1]
        for i, di in enumerate(c.device.tolist()):
            want = _naive_levels(c, table.devices[di] if di >= 0 else None)
            assert (float(c.hi[i]), float(c.lo[i])) == want, (c.rule.name, i)
        assert len(c.machine) == len(c.ids) == len(c.labels) == len(c.series)


def test_every_id_is_the_hash_of_its_labels(compiled: tuple[SeriesTable, list[Check]]) -> None:
    _, checks = compiled
    seen: set[str] = set()
    for c in checks:
        ids = list(c.ids)
        assert ids == [alert_id(lb) for lb in c.labels], c.rule.name
        assert all(c.ids[i] == ids[i] for i in range(0, len(ids), 37))
        seen |= set(ids)
    assert len(seen) == sum(len(c.ids) for c in checks)  # one identity per slot


def test_labels_name_the_device_its_river_the_stage_and_the_metric(
        compiled: tuple[SeriesTable, list[Check]]) -> None:
    table, checks = compiled
    siaga = next(c for c in checks if c.rule.name == "FloodStage" and c.severity == "high")
    d = table.devices[int(siaga.device[0])]
    assert siaga.labels[0] == {"alertname": "FloodStage", "severity": "high", "team": "bpbd",
                               "device": d.id, "site": d.site, "kind": "river_gauge",
                               "river": d.tags["river"], "stage": "Siaga"}
    flagged = next(c for c in checks if c.rule.name == "Flagged")
    metrics = {lb["metric"] for lb in flagged.labels[:50]}
    assert metrics == {table.metric[s] for s in flagged.series[:50].tolist()}
    watchdog = next(c for c in checks if c.rule.name == "Watchdog")
    assert watchdog.labels[0] == {"alertname": "Watchdog", "severity": "info", "team": "it"}


def test_slot_maps_invert_the_slots(compiled: tuple[SeriesTable, list[Check]]) -> None:
    table, checks = compiled
    every_series = np.arange(len(table), dtype=np.int32)
    every_device = np.arange(len(table.devices), dtype=np.int32)
    for c in checks:
        want = np.full(len(table), -1)
        want[c.series[c.series >= 0]] = np.flatnonzero(c.series >= 0)
        assert (c.of_series[every_series] == want).all(), c.rule.name
        want_dev = np.full(len(table.devices), -1)
        if c.rule.kind == "offline":
            want_dev[c.device] = np.arange(len(c.device))
        assert (c.of_device[every_device] == want_dev).all(), c.rule.name
        for s in (0, len(table) - 1, *c.series[:3].tolist()):
            assert c.of_series[s] == want[s]
        assert c.of_series[np.array([-5, len(table) + 5])].tolist() == [-1, -1]


def test_an_id_finds_its_slot(compiled: tuple[SeriesTable, list[Check]]) -> None:
    _, checks = compiled
    for c in checks:
        for i in range(0, len(c.ids), 11):
            assert c.ids.slot_of(c.ids[i]) == i
    stage = checks[0]
    assert stage.ids.slot_of("0123456789abcdef") == -1
    assert stage.ids.slot_of("not hex") == -1
