"""Compiling rules against the chain's series table: each rule becomes one `Check` per alert
level (a stage rule one per level), with one slot per series, device or own check it watches.

A check is columnar: per slot the series and device it watches, the firing and clearing
levels and the alert id are numpy arrays (a level the rule states as a number is one value
broadcast over the slots, not a copy per slot). A slot's labels (the alert's identity) are
built when asked for (`Labels`), from the rule and the series table, not kept per slot. At
100,000 devices a dict of labels and a str id per slot were 220 MB, and matching each rule
against each series in Python took half a minute; both are now array operations per rule.

Labels of an alert: ``alertname`` (the rule), ``severity``, ``team``, and for a device
``device``, ``site``, ``kind`` and, on a river, ``river``; a stage adds ``stage`` (its
label, e.g. Siaga) and a quality rule over several metrics ``metric``. The alert id is a hash
of the labels: the same alert after a restart, on every replica, in every link.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alerts.compile_slots import Ids, Labels, SlotMap
from alerts.machine import Machine
from alerts.rules import SERIES_KINDS, Bound, Level, Rule, RuleSet, Selector
from core.batch import FLAGS
from devices.series import SeriesTable

log = logging.getLogger("pantau.alerts")
Warn = Callable[[str], None]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
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
    the rule's sign (so "fires when x >= hi" holds for `below` rules too); read-only (a
    broadcast value when the rule states a number). ``prev_value``/``prev_ts``: a rate rule's
    previous reading per slot (empty for the other kinds)."""

    rule: Rule
    severity: str
    level: Level | None
    series: I32
    device: I32
    of_series: SlotMap
    of_device: SlotMap
    hi: F64
    lo: F64
    labels: Labels
    ids: Ids
    machine: Machine = field(init=False)
    flag_mask: int = 0
    prev_value: F64 = field(init=False)
    prev_ts: npt.NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.machine = Machine(n, for_ns=int(self.rule.for_s * S),
                               keep_ns=int(self.rule.keep_firing_for_s * S))
        rate = n if self.rule.kind == "rate" else 0
        self.prev_value = np.full(rate, np.nan)
        self.prev_ts = np.zeros(rate, np.int64)


class _Columns:
    """The device attributes rules select by, as arrays over ``table.devices`` (built once per
    `compile_rules`, so that selecting costs array operations per rule, not calls per device)."""

    def __init__(self, table: SeriesTable) -> None:
        self.table = table
        devices = table.devices
        self.kind = np.array([d.kind for d in devices], dtype=object)
        self.site = np.array([d.site for d in devices], dtype=object)
        self.index = {d.id: i for i, d in enumerate(devices)}
        names: dict[str, int] = {}
        self.metric = np.fromiter((names.setdefault(m, len(names)) for m in table.metric),
                                  np.int32, len(table))
        self.metric_code = names
        self._tags: dict[str, npt.NDArray[np.object_]] = {}
        self._selected: dict[tuple[object, ...], B] = {}
        self._text: tuple[list[str], list[str], list[str]] | None = None

    def ids(self, labels: Labels) -> npt.NDArray[np.uint64]:
        """`alert_id` of every slot's labels as a number, from the label texts of each device
        put together once per compile (a dict and a sort per slot took seconds at 100,000
        devices). Labels sort by key, whatever the values: ``alertname device kind metric
        river severity site stage team``; a test holds it to `alert_id`."""
        if self._text is None:
            devices = self.table.devices
            self._text = ([f"\x00device\x01{d.id}\x00kind\x01{d.kind}" for d in devices],
                          [f"\x00river\x01{d.tags['river']}" if d.tags.get("river") else ""
                           for d in devices],
                          [f"\x00site\x01{d.site}" for d in devices])
        dev, river, site = self._text
        rule, lv = labels.rule, labels.level
        head = f"alertname\x01{rule.name}"
        sev = f"\x00severity\x01{labels.severity}"
        tail = (f"\x00stage\x01{lv.label}" if lv is not None else "") + f"\x00team\x01{rule.team}"
        metric = self.table.metric
        texts = (head + sev + tail if di < 0 else
                 head + dev[di] + (f"\x00metric\x01{metric[s]}" if labels.multi else "")
                 + river[di] + sev + site[di] + tail
                 for di, s in zip(labels.device.tolist(), labels.series.tolist(), strict=True))
        digests = b"".join(hashlib.sha256(t.encode()).digest()[:8] for t in texts)
        return np.frombuffer(digests, ">u8").astype(np.uint64)

    def select(self, sel: Selector) -> B:
        """`Selector.matches` for every device at once."""
        key = (sel.kinds, sel.sites, sel.ids, tuple(sorted(sel.tags.items())))
        if key not in self._selected:
            m = np.ones(len(self.kind), bool)
            if sel.kinds:
                m &= np.isin(self.kind, list(sel.kinds))
            if sel.sites:
                m &= np.isin(self.site, list(sel.sites))
            if sel.ids:
                only = np.zeros(len(m), bool)
                only[[self.index[i] for i in sel.ids if i in self.index]] = True
                m &= only
            for k, v in sel.tags.items():
                if k not in self._tags:
                    self._tags[k] = np.array([d.tags.get(k) for d in self.table.devices], object)
                m &= self._tags[k] == v
            self._selected[key] = m
        return self._selected[key]

    def bound(self, b: Bound) -> F64:
        """`Bound.of` for every device."""
        if not b.param:
            return np.full(len(self.kind), b.value)
        return np.array([b.of(d) for d in self.table.devices], np.float64)


def _series_slots(rule: Rule, cols: _Columns) -> I32:
    """The series a series rule watches: its metric on every selected device (every raw
    metric for a quality rule without one), and where its levels are defined."""
    table = cols.table
    dev_ok = cols.select(rule.devices)
    for b in (rule.level, rule.clear):
        if b is not None:
            dev_ok = dev_ok & np.isfinite(cols.bound(b))
    ok = dev_ok[table.device_index]
    if rule.metric:
        ok &= cols.metric == cols.metric_code.get(rule.metric, -1)
    else:
        ok[table.raw:] = False
    return np.flatnonzero(ok).astype(np.int32)


def compile_rule(rule: Rule, table: SeriesTable, warn: Warn = log.warning,
                 cols: _Columns | None = None) -> list[Check]:
    """The checks of one rule. A rule whose metric no device of this registry and chain has
    raises nothing (a smaller registry, a chain without its processor): ``warn`` is told."""
    cols = cols or _Columns(table)
    if rule.kind in SERIES_KINDS:
        series = _series_slots(rule, cols)
        if not len(series) and rule.metric and rule.metric not in cols.metric_code:
            warn(f"{rule.where}: rule {rule.name!r}: no device has metric {rule.metric!r} "
                 "(derived ones need their processor): it raises nothing")
            return []
        device = table.device_index[series].astype(np.int32)
    elif rule.kind == "offline":
        device = np.flatnonzero(cols.select(rule.devices)).astype(np.int32)
        series = np.full(len(device), -1, np.int32)
    else:  # health, watchdog: one alert, no device
        series = device = np.full(1, -1, np.int32)
    levels: list[Level | None] = list(rule.levels) if rule.kind == "stage" else [None]
    multi = rule.kind == "quality" and not rule.metric
    mask = sum({int(FLAGS[f]) for f in rule.flags})
    of_series = SlotMap(series)
    of_device = SlotMap(device if rule.kind == "offline" else np.empty(0, np.int32))
    checks = []
    for lv in levels:
        severity = lv.severity if lv is not None else rule.severity
        labels = Labels(rule, severity, lv, table, series, device, multi=multi)
        hi, lo = _levels(rule, lv, device, cols)
        checks.append(Check(rule, severity, lv, series, device, of_series, of_device,
                            hi, lo, labels, Ids(cols.ids(labels)), flag_mask=mask))
    return checks


def _levels(rule: Rule, lv: Level | None, device: I32, cols: _Columns) -> tuple[F64, F64]:
    """(firing, clearing) level of each slot, times the rule's sign. Conditions that are 0 or
    1 (quality, offline, watchdog) fire at 1."""
    n = len(device)
    if lv is not None:
        return _same(lv.at, n), _same(lv.at, n)
    if rule.kind == "rate":
        return _same(rule.rate_above, n), _same(
            rule.clear.value if rule.clear is not None else rule.rate_above, n)
    level = rule.level or Bound(value=1.0)
    hi = _per_slot(level, rule.sign, device, cols)
    return hi, hi if rule.clear is None else _per_slot(rule.clear, rule.sign, device, cols)


def _per_slot(b: Bound, sign: float, device: I32, cols: _Columns) -> F64:
    if not b.param or (device < 0).all():  # a slot without a device takes the value
        return _same(sign * b.value, len(device))
    out: F64 = sign * cols.bound(b)[device]
    return out


def _same(value: float, n: int) -> F64:
    """``value`` for each of ``n`` slots: one float broadcast, read-only."""
    return np.broadcast_to(np.float64(value), (n,))


def compile_rules(rules: RuleSet, table: SeriesTable, warn: Warn = log.warning) -> list[Check]:
    """Every rule's checks, in file order."""
    cols = _Columns(table)
    return [c for rule in rules for c in compile_rule(rule, table, warn, cols)]


def describe(checks: list[Check]) -> str:
    """One line per rule for ``pantau check``: how many alerts it may raise."""
    per: dict[str, int] = {}
    for c in checks:
        per[c.rule.name] = per.get(c.rule.name, 0) + len(c.ids)
    return ", ".join(f"{name} ({n})" for name, n in per.items())
