"""`Evaluator`: the compiled checks run over what Pantau has just stored and over device status
changes, and their state changes handed to the lifecycle (`alerts.lifecycle.Book`).

- `on_stored` (`core.stored.StoredListener`): the stored readings and derived rows of a batch
  are one set of rows (their series ids index the chain's table); per check, numpy picks the
  rows of its slots, computes each row's condition (above/below with the clear level,
  rate between successive readings, stage, quality flags) and advances the check's
  `alerts.machine.Machine`. A batch delivered twice changes nothing (rows at or before a
  slot's newest timestamp are ignored).
- `on_transition` (`devices.status.StatusListener`): offline rules.
- `sweep(now_ns, health)`: what time alone decides: offline for ``for``, ``keep_firing_for``
  run out, Pantau's own health values, the Watchdog.

Synchronous and quick: the work per batch is array operations per check; SQLite is touched
only when some alert changed state. Event loop only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from alerts.annotate import render
from alerts.compile import Check
from alerts.lifecycle import Book
from alerts.machine import FIRING, INACTIVE, NEVER, PENDING, Change
from alerts.rules import KINDS
from core.stored import Stored
from devices.series import SeriesTable
from devices.status import Transition

log = logging.getLogger("pantau.alerts")
HOUR_NS = 3600 * 10**9


class Evaluator:
    def __init__(self, checks: list[Check], table: SeriesTable, book: Book, *,
                 dashboard_url: str = "") -> None:
        self.checks, self.table, self.book = checks, table, book
        self.dashboard_url = dashboard_url
        self.by_kind = {k: [c for c in checks if c.rule.kind == k] for k in KINDS}
        self._series_checks = [c for c in checks if (c.series >= 0).any()]
        self._device_index = {d.id: i for i, d in enumerate(table.devices)}
        self._last_value = np.full(len(table), np.nan)
        self._last_ts = np.full(len(table), NEVER, np.int64)
        self._dev_series: list[list[int]] = [[] for _ in table.devices]
        for s, di in enumerate(table.device_index.tolist()):  # once, at start-up
            self._dev_series[di].append(s)

    # -- restart -------------------------------------------------------------------------
    def restore(self, now_ns: int) -> int:
        """Put the saved alerts' state back into the checks; an alert whose rule or device
        is gone is resolved now. Returns how many slots were restored."""
        n, gone = 0, []
        for a in list(self.book.alerts.values()):
            if a.state == "resolved" or not a.machine:
                continue
            found = self._slot_of(a.id)
            if found is None:
                gone.append(a)
                continue
            check, slot = found
            check.machine.restore(slot, **a.machine)
            n += 1
        if gone:
            was = {"firing": FIRING, "pending": PENDING}
            self.book.apply([(a.id, a.labels, Change(-1, now_ns, was[a.state], INACTIVE, a.value),
                              a.annotations, a.machine) for a in gone], now_ns)
        return n

    def _slot_of(self, aid: str) -> tuple[Check, int] | None:
        """The check and slot of alert ``aid`` (a search in each check's sorted ids: a dict
        of every id of 100,000 devices' slots would cost ~120 MB for a restart's lookups)."""
        for c in self.checks:
            if (i := c.ids.slot_of(aid)) >= 0:
                return c, i
        return None

    # -- inputs --------------------------------------------------------------------------
    def on_stored(self, stored: Stored) -> None:
        r, d = stored.readings, stored.derived
        series = np.concatenate([r.series, d.series])
        if not len(series):
            return
        ts = np.concatenate([r.ts_ns, d.ts_ns])
        value = np.concatenate([r.value, d.value])
        flags = np.concatenate([r.flags, np.zeros(len(d), np.uint16)])
        newer = ts >= self._last_ts[series]
        np.maximum.at(self._last_ts, series[newer], ts[newer])
        latest = newer & (ts == self._last_ts[series])
        self._last_value[series[latest]] = value[latest]
        out: list[tuple[Check, Change]] = []
        for check in self._series_checks:  # one pass of array operations per check
            slot = check.of_series[series]
            rows = np.flatnonzero(slot >= 0)
            if not len(rows):
                continue
            s, t, v = slot[rows].astype(np.intp), ts[rows], value[rows]
            fresh = check.machine.fresh(s, t)
            s, t, v, f = s[fresh], t[fresh], v[fresh], flags[rows][fresh]
            if check.rule.kind == "rate":
                v = self._rate(check, s, t, v)
            cond = self._cond(check, s, v, f)
            out += [(check, ch) for ch in check.machine.advance(s, t, cond, v)]
        self._apply(out, stored.now_ns)

    def on_transition(self, change: Transition) -> None:
        di = self._device_index.get(change.device)
        if di is None:
            return
        offline = 1 if change.status == "offline" else 0
        out: list[tuple[Check, Change]] = []
        for check in self.by_kind["offline"]:
            slot = int(check.of_device[di])
            if slot >= 0:
                out += [(check, ch) for ch in check.machine.advance(
                    np.array([slot]), np.array([change.ts_ns]), np.array([offline], np.int8),
                    np.array([float(offline)]))]
        self._apply(out, change.ts_ns)

    def sweep(self, now_ns: int, health: Mapping[str, float]) -> None:
        out: list[tuple[Check, Change]] = []
        for check in self.by_kind["offline"]:  # still offline: `for` runs on the clock
            m = check.machine
            slots = np.flatnonzero(m.cond & (m.state != FIRING) & (m.last_ts < now_ns))
            one = np.ones(len(slots))
            out += [(check, ch) for ch in m.advance(slots, np.full(len(slots), now_ns),
                                                    one.astype(np.int8), one)]
        feeds = [(c, health[c.rule.check]) for c in self.by_kind["health"]
                 if c.rule.check in health]
        feeds += [(c, 1.0) for c in self.by_kind["watchdog"]]
        for check, value in feeds:
            v = np.array([value])
            cond = self._cond(check, np.zeros(1, np.intp), v, np.zeros(1, np.uint16))
            out += [(check, ch) for ch in check.machine.advance(
                np.zeros(1, np.intp), np.array([now_ns]), cond, v)]
        for check in self.checks:
            out += [(check, ch) for ch in check.machine.expire(now_ns)]
        self._apply(out, now_ns)

    # -- conditions ----------------------------------------------------------------------
    @staticmethod
    def _cond(check: Check, s: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
        """1 true, 0 false, -1 inside the hysteresis band (or unknown: NaN)."""
        if check.rule.kind == "quality":
            flagged: np.ndarray = (f & np.uint16(check.flag_mask)) != 0
            return flagged.astype(np.int8)
        x = v * check.rule.sign
        cond: np.ndarray = np.where(x >= check.hi[s], 1, np.where(x < check.lo[s], 0, -1))
        return cond.astype(np.int8)

    @staticmethod
    def _rate(check: Check, s: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Per row, the change per hour since the slot's previous reading (NaN for none)."""
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        first = np.ones(len(s), bool)
        first[1:] = s[1:] != s[:-1]
        pv = np.where(first, check.prev_value[s], np.roll(v, 1))
        pt = np.where(first, check.prev_ts[s], np.roll(t, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(pt > 0, (v - pv) / ((t - pt) / HOUR_NS), np.nan)
        last = np.r_[first[1:], True]
        check.prev_value[s[last]], check.prev_ts[s[last]] = v[last], t[last]
        out = np.empty_like(rate)
        out[order] = rate
        return out

    # -- to the lifecycle ----------------------------------------------------------------
    def _apply(self, out: list[tuple[Check, Change]], now_ns: int) -> None:
        if not out:
            return
        items = []
        for check, ch in out:
            m, i = check.machine, ch.slot
            machine = {"state": int(m.state[i]), "cond": bool(m.cond[i]),
                       "run_start": int(m.run_start[i]), "last_true": int(m.last_true[i]),
                       "last_ts": int(m.last_ts[i]), "value": float(m.value[i])}
            items.append((check.ids[i], check.labels[i], ch, self._annotations(check, ch),
                          machine))
        self.book.apply(items, now_ns)

    def _annotations(self, check: Check, ch: Change) -> dict[str, str]:
        di, sid = int(check.device[ch.slot]), int(check.series[ch.slot])
        device = self.table.devices[di] if di >= 0 else None
        metrics = {self.table.metric[s]: float(self._last_value[s])
                   for s in self._dev_series[di]} if di >= 0 else {}
        unit = self.table.unit[sid] if sid >= 0 else ""
        return render(check.rule, check.level, check.labels[ch.slot], value=ch.value,
                      unit=unit, threshold=float(check.hi[ch.slot]),
                      device_name=device.name if device else "", metrics=metrics,
                      dashboard_url=self.dashboard_url)
