"""Compiling rules against the chain's series table: each rule becomes one `Check` per alert
level (a stage rule one per level), with one slot per series, device or own check it watches,
the per-slot levels as arrays and each slot's labels (the alert's identity).

Labels of an alert: ``alertname`` (the rule), ``severity``, ``team``, and for a device
``device``, ``site``, ``kind`` and, on a river, ``river``; a stage adds ``stage`` (its
label, e.g. Siaga) and a quality rule over several metrics ``metric``. The alert id is a hash
of the labels: the same alert after a restart, on every replica, in every link.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alerts.machine import Machine
from alerts.rules import SERIES_KINDS, Bound, Level, Rule, RuleSet
from core.batch import FLAGS
from devices.registry import Device
from devices.series import SeriesTable

log = logging.getLogger("pantau.alerts")
Warn = Callable[[str], None]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
S = 1_000_000_000


def alert_id(labels: dict[str, str]) -> str:
    """A stable id of an alert's identity (its labels): 16 hex digits."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class Check:
    """One rule (one level of a stage rule) over its slots. ``series``/``device``: per slot the
    series id / device index it watches (-1 where none); ``of_series``/``of_device``: the
    inverse maps (-1: not watched); ``hi``/``lo``: firing and clearing levels per slot, times
    the rule's sign (so "fires when x >= hi" holds for `below` rules too)."""

    rule: Rule
    severity: str
    level: Level | None
    series: I32
    device: I32
    of_series: I32
    of_device: I32
    hi: F64
    lo: F64
    labels: list[dict[str, str]]
    ids: list[str]
    machine: Machine = field(init=False)
    flag_mask: int = 0
    prev_value: F64 = field(init=False)
    prev_ts: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.machine = Machine(n, for_ns=int(self.rule.for_s * S),
                               keep_ns=int(self.rule.keep_firing_for_s * S))
        self.prev_value = np.full(n, np.nan)
        self.prev_ts = np.zeros(n, np.int64)


def _labels(rule: Rule, severity: str, d: Device | None, extra: dict[str, str]) -> dict[str, str]:
    out = {"alertname": rule.name, "severity": severity, "team": rule.team}
    if d is not None:
        out |= {"device": d.id, "site": d.site, "kind": d.kind}
        if d.tags.get("river"):
            out["river"] = d.tags["river"]
    return out | extra


def _series_slots(rule: Rule, table: SeriesTable) -> list[int]:
    """The series a series rule watches: its metric on every selected device (every raw
    metric for a quality rule without one), and where its levels are defined."""
    out = []
    for s in range(len(table)):  # once per rule at start-up, never per reading
        d = table.devices[int(table.device_index[s])]
        name = table.metric[s]
        if not rule.devices.matches(d):
            continue
        if not (name == rule.metric if rule.metric else s < table.raw):
            continue
        level, clear = rule.level, rule.clear
        if level is not None and not math.isfinite(level.of(d)):
            continue
        if clear is not None and not math.isfinite(clear.of(d)):
            continue
        out.append(s)
    return out


def compile_rule(rule: Rule, table: SeriesTable, warn: Warn = log.warning) -> list[Check]:
    """The checks of one rule. A rule whose metric no device of this registry and chain has
    raises nothing (a smaller registry, a chain without its processor): ``warn`` is told."""
    n_series, n_dev = len(table), len(table.devices)
    devices = [i for i, d in enumerate(table.devices) if rule.devices.matches(d)]
    if rule.kind in SERIES_KINDS:
        slots = _series_slots(rule, table)
        if not slots and rule.metric and rule.metric not in table.metric:
            warn(f"{rule.where}: rule {rule.name!r}: no device has metric {rule.metric!r} "
                 "(derived ones need their processor): it raises nothing")
            return []
        dev = [int(table.device_index[s]) for s in slots]
    elif rule.kind == "offline":
        slots, dev = [-1] * len(devices), devices
    else:  # health, watchdog: one alert, no device
        slots, dev = [-1], [-1]
    levels: list[Level | None] = list(rule.levels) if rule.kind == "stage" else [None]
    multi = rule.kind == "quality" and not rule.metric
    mask = sum({int(FLAGS[f]) for f in rule.flags})
    checks = []
    for lv in levels:
        severity = lv.severity if lv is not None else rule.severity
        labels, hi, lo = [], [], []
        for s, di in zip(slots, dev, strict=True):
            d = table.devices[di] if di >= 0 else None
            extra = {"stage": lv.label} if lv is not None else {}
            if multi:
                extra["metric"] = table.metric[s]
            labels.append(_labels(rule, severity, d, extra))
            h, lo_ = _levels(rule, lv, d)
            hi.append(h)
            lo.append(lo_)
        series = np.asarray(slots, np.int32)
        device = np.asarray(dev, np.int32)
        of_series = np.full(n_series, -1, np.int32)
        of_series[series[series >= 0]] = np.flatnonzero(series >= 0)
        of_device = np.full(n_dev, -1, np.int32)
        if rule.kind == "offline":
            of_device[device] = np.arange(len(device))
        checks.append(Check(rule, severity, lv, series, device, of_series, of_device,
                            np.asarray(hi, np.float64), np.asarray(lo, np.float64), labels,
                            [alert_id(lb) for lb in labels], flag_mask=mask))
    return checks


def _levels(rule: Rule, lv: Level | None, d: Device | None) -> tuple[float, float]:
    """(firing, clearing) level of one slot, times the rule's sign. Conditions that are 0 or 1
    (quality, offline, watchdog) fire at 1."""
    if lv is not None:
        return lv.at, lv.at
    if rule.kind == "rate":
        return rule.rate_above, rule.clear.value if rule.clear is not None else rule.rate_above
    level = rule.level or Bound(value=1.0)
    hi = level.of(d) if d is not None else level.value
    clear = rule.clear
    lo = hi if clear is None else clear.of(d) if d is not None else clear.value
    return rule.sign * hi, rule.sign * lo


def compile_rules(rules: RuleSet, table: SeriesTable, warn: Warn = log.warning) -> list[Check]:
    """Every rule's checks, in file order."""
    return [c for rule in rules for c in compile_rule(rule, table, warn)]


def describe(checks: list[Check]) -> str:
    """One line per rule for ``pantau check``: how many alerts it may raise."""
    per: dict[str, int] = {}
    for c in checks:
        per[c.rule.name] = per.get(c.rule.name, 0) + len(c.ids)
    return ", ".join(f"{name} ({n})" for name, n in per.items())
