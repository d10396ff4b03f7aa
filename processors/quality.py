"""Data quality: stuck sensors, physically impossible jumps and missed reports, as flag bits.

Per series, comparing each OK reading with the previous one of the same series (carried across
batches):

- `FLAG_STUCK`: the value has not changed for at least ``n`` readings *and* ``seconds``
  (``flatline[metric] = (n, seconds)``; metrics not listed are never stuck, since a rain gauge
  reading 0 for a week is not broken). Every reading from that point on in the run is flagged.
- `FLAG_SPIKE`: ``|Δvalue| / Δt`` from the previous reading above ``max_rate[metric]`` (units
  per second). Flags are causal (a reading's flag never depends on later readings), so after a
  one-reading spike both the spike and the return jump are flagged.
- `FLAG_GAP`: the reading came more than ``gap_factor`` × the device's ``interval_s`` after the
  previous one; ``round(Δt / interval) - 1`` reports are counted as missed.

Flags never change a row's status: the reading is stored, marked. Counts per series (stuck,
spike, gap, missed) are part of ``state()``; ``counts()`` sums them for ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from core.batch import FLAG_GAP, FLAG_SPIKE, FLAG_STUCK, TelemetryBatch
from core.state import State
from devices.series import SeriesTable
from processors.domain.derived import Output
from processors.domain.segments import F64, I32, I64, IP, NEVER, bounds, fresh_rows

S = 1_000_000_000
COUNTS = ("stuck", "spike", "gap", "missed")
__all__ = ["FLAG_GAP", "FLAG_SPIKE", "FLAG_STUCK", "Quality"]

DEFAULT_MAX_RATE: Mapping[str, float] = {  # per second; generous: only physics is excluded
    "level_cm": 2.0, "distance_cm": 2.0, "temperature_c": 0.1, "humidity_pct": 1.0,
    "pressure_hpa": 0.05, "battery_v": 0.05, "wind_dir_deg": 360.0,
}
DEFAULT_FLATLINE: Mapping[str, tuple[int, float]] = {
    "level_cm": (30, 6 * 3600.0), "distance_cm": (30, 6 * 3600.0),
    "temperature_c": (30, 3 * 3600.0), "humidity_pct": (30, 3 * 3600.0),
    "pressure_hpa": (30, 3 * 3600.0), "pm25": (30, 3 * 3600.0), "pm10": (30, 3 * 3600.0),
}


class Quality:
    def __init__(self, table: SeriesTable, *, max_rate: Mapping[str, float] = DEFAULT_MAX_RATE,
                 flatline: Mapping[str, tuple[int, float]] = DEFAULT_FLATLINE,
                 gap_factor: float = 2.0) -> None:
        n = len(table)
        self.rate = np.array([max_rate.get(m, np.inf) for m in table.metric], np.float64)
        self.flat_n = np.array([flatline.get(m, (0, 0.0))[0] for m in table.metric], np.int64)
        self.flat_ns = np.array([int(flatline.get(m, (0, 0.0))[1] * S) for m in table.metric],
                                np.int64)
        self.interval_s = table.interval_s()
        self.gap_factor = gap_factor
        self.last_ts = np.full(n, NEVER, np.int64)
        self.last_value = np.full(n, np.nan)
        self.run_start = np.full(n, NEVER, np.int64)
        self.run_count = np.zeros(n, np.int64)
        self.count = np.zeros((n, len(COUNTS)), np.int64)

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.last_ts, order)
        if len(rows) == 0:
            return Output(batch)
        s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        n = len(s)
        first, last = bounds(s)
        # every series once, as at the devices' cadence: a reading's previous one is the state
        single = bool(first.all())
        if single:
            pt, pv = self.last_ts[s], self.last_value[s]
        else:
            pt, pv = np.empty_like(t), np.empty_like(v)  # the previous reading of the series
            pt[1:], pv[1:] = t[:-1], v[:-1]
            head = s[first]
            pt[first], pv[first] = self.last_ts[head], self.last_value[head]
        has_prev = pt != NEVER
        dt = np.where(has_prev, (t - pt) / S, np.inf)
        spike = has_prev & (np.abs(v - pv) > self.rate[s] * dt)
        periods = dt / self.interval_s[s]
        gap = has_prev & (periods > self.gap_factor)

        # the run of equal values each reading ends: its first row in the batch, or state
        same = has_prev & (v == pv)
        if single:
            start = np.where(same, self.run_start[s], t)
            count = np.where(same, self.run_count[s] + 1, 1)
        else:
            at = np.arange(n)
            seg0 = np.maximum.accumulate(np.where(first, at, 0))  # each row's segment start
            changed = np.maximum.accumulate(np.where(same, -1, at))
            inside = changed >= seg0
            start = np.where(inside, t[changed], self.run_start[s])
            count = np.where(inside, at - changed + 1, self.run_count[s] + (at - seg0) + 1)
        flat_n = self.flat_n[s]
        stuck = (flat_n > 0) & (count >= flat_n) & (t - start >= self.flat_ns[s])

        la = slice(None) if single else last
        sl = s[la]
        self.last_ts[sl], self.last_value[sl] = t[la], v[la]
        self.run_start[sl], self.run_count[sl] = start[la], count[la]
        bits = np.zeros(n, np.uint16)
        for j, (flag, mask) in enumerate(((FLAG_STUCK, stuck), (FLAG_SPIKE, spike),
                                          (FLAG_GAP, gap))):
            if mask.any():  # flags are rare: touch only the flagged rows
                bits[mask] |= flag
                self._add(j, s[mask])
        hit = np.flatnonzero(bits)
        if len(hit) == 0:
            return Output(batch)
        if gap.any():
            missed = np.maximum(np.rint(periods[gap]) - 1, 1).astype(np.int64)
            self._add(3, s[gap], missed)
        flags = batch.flags.copy()
        flags[rows[hit]] |= bits[hit]  # fresh rows are unique
        return Output(replace(batch, flags=flags))

    def _add(self, j: int, series: I32, k: I64 | None = None) -> None:
        """``count[series, j] += k`` (1 when ``k`` is None), repeated series adding up."""
        if len(series) > 64:  # many: one bincount beats a scatter-add per row
            self.count[:, j] += np.bincount(series, k, minlength=len(self.count)).astype(
                np.int64)
        else:
            np.add.at(self.count[:, j], series, 1 if k is None else k)

    def counts(self) -> dict[str, int]:
        return {name: int(self.count[:, j].sum()) for j, name in enumerate(COUNTS)}

    def state(self) -> State:
        return {"last_ts": self.last_ts, "last_value": self.last_value,
                "run_start": self.run_start, "run_count": self.run_count, "count": self.count}

    def restore(self, state: State) -> None:
        for k in ("last_ts", "last_value", "run_start", "run_count", "count"):
            setattr(self, k, np.asarray(state[k], getattr(self, k).dtype).copy())

    # -- warm-up from stored data (`ingest.warmup`) ------------------------------------------
    def lookback_s(self) -> F64:
        """Per series, the history a replay needs: a flatline rule's span (to find a stuck
        run again), else the reading before the next one (for spikes and gaps)."""
        flat = np.where(self.flat_n > 0, np.maximum(self.flat_ns / S,
                                                    self.flat_n * self.interval_s), 0.0)
        return np.maximum(flat, (self.gap_factor + 1) * self.interval_s)

    def replayed(self, *, catch_up: bool) -> None:
        """After a replay: the flags it found count only when it caught up on readings the
        lost run had counted (``catch_up``); a full warm-up starts the counters at 0."""
        if not catch_up:
            self.count[:] = 0
