"""Air-quality index per station: ISPU (P.14/2020) or US EPA AQI, from µg/m³ readings.

Stations send ``pm25, pm10, co, no2, o3, so2`` (and ``hc`` for ISPU) in µg/m³. For every new
reading the processor averages that pollutant over the standard's period, ending at the reading
(ISPU: 24 h for every parameter; EPA: PM 24 h, O3 and CO 8 h, plus 1-hour O3, SO2 and NO2 1 h;
gases converted to ppm/ppb at 25 °C), and derives:

- ``<metric>_<std>``: the rounded sub-index (``pm25_ispu``; for EPA O3 the larger of 8 h and 1 h);
- per (station, timestamp): ``<std>`` the index (max of the station's latest sub-indices no
  older than ``max_age_s``), ``<std>_critical`` the critical pollutant (index into
  `POLLUTANTS`) and ``<std>_category`` (`processors.domain.aqi_tables.CATEGORIES`);
- EPA only, once per PM series per batch at its latest reading: ``<metric>_nowcast`` (µg/m³)
  from the clock-hour means of the last 12 hours.

``std`` is ``ispu`` or ``aqi``. Averages are over the readings in the window (no completeness
rule yet). State: the readings of the last 24 h and the latest sub-index per series.
"""

from __future__ import annotations

import numpy as np

from devices.series import DerivedMetric, SeriesTable
from ingest.batch import TelemetryBatch
from processors.domain import aqi_tables as t
from processors.domain.derived import Derived, Output, derived
from processors.domain.rolling import History, Span
from processors.domain.segments import F64, I32, I64, IP, NEVER, B, State, ends, fresh_rows

H = 3_600_000_000_000
POLLUTANTS = ("pm25", "pm10", "so2", "co", "o3", "no2", "hc")
# metric -> [(table key, averaging hours, unit)] per standard
ENTRIES: dict[str, dict[str, list[tuple[str, float, str]]]] = {
    "ispu": {p: [(p, t.ISPU_HOURS[p], "ugm3")] for p in POLLUTANTS},
    "aqi": {"pm25": [("pm25", 24, "ugm3")], "pm10": [("pm10", 24, "ugm3")],
            "o3": [("o3_8h", 8, "ppm"), ("o3_1h", 1, "ppm")], "co": [("co", 8, "ppm")],
            "so2": [("so2", 1, "ppb")], "no2": [("no2", 1, "ppb")]},
}


class AirQuality:
    def __init__(self, table: SeriesTable, *, standard: str = "ispu", pm25_table: str = "2024",
                 max_age_s: float = 3 * 3600.0) -> None:
        if standard not in ENTRIES:
            raise ValueError(f"air quality standard must be 'ispu' or 'aqi', not {standard!r}")
        n = len(table)
        self.std, self.pm25_table, self.max_age = standard, pm25_table, int(max_age_s * 1e9)
        self.entries = ENTRIES[standard]
        self.pollutant = np.array([POLLUTANTS.index(m) if m in self.entries else -1
                                   for m in table.metric], np.int8)
        self.own = self.pollutant >= 0
        self.metric = table.metric
        self.device = table.device_index
        self.history = History(n, 24 * H)
        self.sub = np.full(n, np.nan)
        self.sub_ts = np.full(n, NEVER, np.int64)

    def derives(self) -> list[DerivedMetric]:
        src = self.pollutant >= 0
        out = [DerivedMetric(self.std, True, src), DerivedMetric(self.std, False, src),
               DerivedMetric(f"{self.std}_critical", False, src),
               DerivedMetric(f"{self.std}_category", False, src)]
        if self.std == "aqi":
            out.append(DerivedMetric("nowcast", True, np.isin(self.pollutant, (0, 1)), "ug/m3"))
        return out

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.history.last_ts, order, self.own)
        if len(rows) == 0:
            return Output(batch)
        s, ts = batch.series[rows], batch.ts_ns[rows]
        span = self.history.add(s, ts, batch.value[rows])
        sub = self._subindex(span, s)
        out: list[Derived] = [derived(self.std, ts, s, sub), *self._index(s, ts, sub)]
        last = ends(s)  # state after the index: it seeds from the readings before the batch
        self.sub[s[last]], self.sub_ts[s[last]] = sub[last], ts[last]
        if self.std == "aqi":
            out += self._nowcast(span, s, last)
        return Output(batch, tuple(out))

    def _subindex(self, span: Span, s: I32) -> F64:
        means = {h: span.mean(span.lower(int(h * H))) for h in (1, 8, 24)}
        sub = np.full(len(s), np.nan)
        for metric, entries in self.entries.items():  # a handful of pollutants
            m = self.pollutant[s] == POLLUTANTS.index(metric)
            for key, hours, unit in entries:
                c = means[int(hours)][m]
                if unit != "ugm3":
                    c = t.ugm3_to_ppb(metric, c) / (1000.0 if unit == "ppm" else 1.0)
                x = (t.ispu_subindex(key, c) if self.std == "ispu"
                     else t.epa_subindex(key, c, pm25_table=self.pm25_table))
                sub[m] = np.fmax(sub[m], t.round_half_up(x))
        return sub

    def _index(self, s: I32, ts: I64, sub: F64) -> list[Derived]:
        """Per (station, timestamp): max over each pollutant's latest sub-index, carried
        forward within the batch and from state, dropped once older than ``max_age_s``."""
        dev = self.device[s]
        order = np.lexsort((ts, dev))
        s, ts, sub, dev = s[order], ts[order], sub[order], dev[order]
        group_end = np.ones(len(s), bool)
        group_end[:-1] = (dev[1:] != dev[:-1]) | (ts[1:] != ts[:-1])
        dev_start = np.maximum.accumulate(np.where(np.r_[True, dev[1:] != dev[:-1]],
                                                   np.arange(len(s)), 0))
        best = np.full(len(s), -np.inf)
        critical = np.full(len(s), -1.0)
        for p in range(len(POLLUTANTS)):
            own = self.pollutant[s] == p
            if not own.any() and not (self.pollutant == p).any():
                continue
            # seed: the station's series for p, from state (first match per device)
            seed_val, seed_ts = self._seed(dev, p)
            idx = np.maximum.accumulate(np.where(own, np.arange(len(s)), -1))
            inside = idx >= dev_start
            val = np.where(inside, sub[np.maximum(idx, 0)], seed_val)
            vts = np.where(inside, ts[np.maximum(idx, 0)], seed_ts)
            val = np.where((ts >= vts) & (ts - vts <= self.max_age), val, np.nan)
            better = val > best
            best, critical = np.where(better, val, best), np.where(better, p, critical)
        ge = group_end & np.isfinite(best)
        src, when, index = s[ge], ts[ge], best[ge]
        return [derived(self.std, when, src, index, per_series=False),
                derived(f"{self.std}_critical", when, src, critical[ge], per_series=False),
                derived(f"{self.std}_category", when, src,
                        t.category(index, "ispu" if self.std == "ispu" else "epa")
                        .astype(np.float64), per_series=False)]

    def _seed(self, dev: I32, p: int) -> tuple[F64, I64]:
        """Latest state sub-index of pollutant ``p`` at each row's station (NaN if none)."""
        series_of = np.full(int(self.device.max(initial=0)) + 1, -1, np.intp)
        ids = np.flatnonzero(self.pollutant == p)
        series_of[self.device[ids][::-1]] = ids[::-1]
        sid = series_of[dev]
        return (np.where(sid >= 0, self.sub[sid], np.nan),
                np.where(sid >= 0, self.sub_ts[sid], NEVER))

    def _nowcast(self, span: Span, s: I32, last: B) -> list[Derived]:
        pm = last & np.isin(self.pollutant[s], (0, 1))
        if not pm.any():
            return []
        pos = span.pos[pm]
        lo = span.lower(12 * H)[pm]
        counts = pos - lo + 1
        row = np.repeat(np.arange(len(pos)), counts)
        elem = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + lo[row]
        hour = span.ts_ns[pos][row] // H - span.ts_ns[elem] // H
        keep = hour < 12  # the current clock hour and the 11 before it
        row, elem, key = row[keep], elem[keep], (row * 12 + hour)[keep]
        total = np.bincount(key, span.value[elem], minlength=12 * len(pos)).reshape(-1, 12)
        n = np.bincount(key, minlength=12 * len(pos)).reshape(-1, 12)
        with np.errstate(invalid="ignore", divide="ignore"):
            hourly = np.where(n > 0, total / n, np.nan)
        src = s[pm]
        dec = np.where(self.pollutant[src] == 0, 1, 0)
        nc = np.where(dec == 1, t.nowcast(hourly, decimals=1), t.nowcast(hourly, decimals=0))
        return [derived("nowcast", span.ts_ns[pos], src, nc)]

    def state(self) -> State:
        return {**self.history.state("history_"), "sub": self.sub, "sub_ts": self.sub_ts}

    def restore(self, state: State) -> None:
        self.history.restore(state, "history_")
        self.sub = np.asarray(state["sub"], np.float64).copy()
        self.sub_ts = np.asarray(state["sub_ts"], np.int64).copy()

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs (`ingest.warmup`): the 24 hours kept."""
        return np.where(self.own, 24 * 3600.0, 0.0)
