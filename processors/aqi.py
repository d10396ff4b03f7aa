"""Air-quality index per station: ISPU (P.14/2020) or US EPA AQI, from µg/m³ readings.

Stations send ``pm25, pm10, co, no2, o3, so2`` (and ``hc`` for ISPU) in µg/m³. For every new
reading the processor averages that pollutant over the standard's period ending at the reading
(ISPU: 24 h for every parameter; EPA: PM 24 h, O3 and CO 8 h, SO2 and NO2 1 h, plus 1-hour O3
and, above AQI 200, 24-hour SO2; gases converted to ppm/ppb at 25 °C), and derives:

- ``<metric>_<std>``: the rounded sub-index (``pm25_ispu``; EPA O3: the larger of 8 h and 1 h;
  EPA SO2: `processors.domain.aqi_tables.epa_so2_subindex`);
- per (station, timestamp): ``<std>`` the index (max of the station's latest sub-indices no
  older than ``max_age_s``), ``<std>_critical`` the critical pollutant (index into
  `POLLUTANTS`) and ``<std>_category`` (`processors.domain.aqi_tables.CATEGORIES`);
- EPA only, at every PM reading: ``<metric>_nowcast`` (µg/m³) from the hourly means of the
  last 12 hours.

``std`` is ``ispu`` or ``aqi``. Completeness (`processors.domain.aqi_completeness`): averages
are means of hourly means ending at the reading, and a sub-index exists only when its primary
average (the first of `SPEC`) is complete: 75 % of the device's ``interval_s`` reports in an
hour, 6 of 8 hours, 18 of 24 hours; NowCast 2 of the 3 latest hours. A secondary average (EPA
1-hour O3, 24-hour SO2) only counts when complete. An incomplete reading adds nothing to the
station's index (its latest complete sub-index still does, within ``max_age_s``) and is counted
per pollutant in `counts` (``aqi_incomplete_<metric>``, ``aqi_incomplete_<metric>_nowcast``).
State per series, whatever its reporting rate: the count and sum of its readings per
``resolution_s`` (5 minutes) over the last 24 h (`processors.domain.rolling.Rings`), the latest
complete sub-index and the counts.
"""

from __future__ import annotations

import numpy as np

from core.batch import TelemetryBatch
from core.state import State
from devices.series import DerivedMetric, SeriesTable
from processors.domain import aqi_completeness as c
from processors.domain import aqi_tables as t
from processors.domain.derived import Derived, Output, derived
from processors.domain.rolling import Rings
from processors.domain.segments import F64, I32, I64, IP, NEVER, B, ends, fresh_rows

H = c.H
POLLUTANTS = ("pm25", "pm10", "so2", "co", "o3", "no2", "hc")
PM = (0, 1)
# standard -> metric -> [(table key, averaging hours, unit)], the first the primary average
SPEC: dict[str, dict[str, list[tuple[str, int, str]]]] = {
    "ispu": {p: [(p, int(t.ISPU_HOURS[p]), "ugm3")] for p in POLLUTANTS},
    "aqi": {"pm25": [("pm25", 24, "ugm3")], "pm10": [("pm10", 24, "ugm3")],
            "o3": [("o3_8h", 8, "ppm"), ("o3_1h", 1, "ppm")], "co": [("co", 8, "ppm")],
            "so2": [("so2", 1, "ppb"), ("so2_24h", 24, "ppb")], "no2": [("no2", 1, "ppb")]},
}


class AirQuality:
    def __init__(self, table: SeriesTable, *, standard: str = "ispu", pm25_table: str = "2024",
                 max_age_s: float = 3 * 3600.0, resolution_s: int = 300) -> None:
        if standard not in SPEC:
            raise ValueError(f"air quality standard must be 'ispu' or 'aqi', not {standard!r}")
        if resolution_s <= 0 or 3600 % resolution_s:
            raise ValueError(f"air quality resolution_s must divide an hour, not {resolution_s}")
        n = len(table)
        self.std, self.pm25_table, self.max_age = standard, pm25_table, int(max_age_s * 1e9)
        self.entries = SPEC[standard]
        self.pollutant = np.array([POLLUTANTS.index(m) if m in self.entries else -1
                                   for m in table.metric], np.int8)
        self.own = self.pollutant >= 0
        self.metric = table.metric
        self.device = table.device_index
        self.need = c.readings_needed(table.interval_s()) if n else np.empty(0, np.int64)
        self.per_hour = 3600 // resolution_s
        self.rings = Rings(self.own, resolution_s * 1_000_000_000, 24 * self.per_hour,
                           sums=("value",))
        self.sub = np.full(n, np.nan)
        self.sub_ts = np.full(n, NEVER, np.int64)
        self.incomplete = np.zeros((n, 2), np.int64)  # sub-index, NowCast

    def derives(self) -> list[DerivedMetric]:
        src = self.pollutant >= 0
        out = [DerivedMetric(self.std, True, src), DerivedMetric(self.std, False, src),
               DerivedMetric(f"{self.std}_critical", False, src),
               DerivedMetric(f"{self.std}_category", False, src)]
        if self.std == "aqi":
            out.append(DerivedMetric("nowcast", True, np.isin(self.pollutant, PM), "ug/m3"))
        return out

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.rings.last_ts, order, self.own)
        if len(rows) == 0:
            return Output(batch)
        s, ts, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        frame = self.rings.frame(s, ts)
        hourly = c.hourly_means(frame, v, self.need[s], 24, self.per_hour)
        self.rings.fold(frame, {"value": v})
        sub, complete = self._subindex(hourly, s)
        self._count(0, s[~complete])
        out: list[Derived] = [derived(self.std, ts, s, sub), *self._index(s, ts, sub)]
        # state after the index: it seeds from the readings before the batch
        ok = np.flatnonzero(np.isfinite(sub))
        last = ok[ends(s[ok])]
        self.sub[s[last]], self.sub_ts[s[last]] = sub[last], ts[last]
        if self.std == "aqi":
            out += self._nowcast(hourly, s, ts)
        return Output(batch, tuple(out))

    def _subindex(self, hourly: F64, s: I32) -> tuple[F64, B]:
        """Rounded sub-index per row (NaN: undefined or incomplete) and whether the row's
        primary average was complete."""
        means = {h: c.window_mean(hourly, h) for h in (1, 8, 24)}
        sub = np.full(len(s), np.nan)
        complete = np.ones(len(s), bool)
        for metric, entries in self.entries.items():  # a handful of pollutants
            m = self.pollutant[s] == POLLUTANTS.index(metric)
            if not m.any():
                continue
            conc = []
            for _, hours, unit in entries:
                x = means[hours][m]
                if unit != "ugm3":
                    x = t.ugm3_to_ppb(metric, x) / (1000.0 if unit == "ppm" else 1.0)
                conc.append(x)
            if self.std == "ispu":
                x = t.ispu_subindex(metric, conc[0])
            elif metric == "so2":
                x = t.epa_so2_subindex(conc[0], conc[1])
            else:
                x = np.full(int(m.sum()), np.nan)
                for (key, _, _), ci in zip(entries, conc, strict=True):
                    x = np.fmax(x, t.epa_subindex(key, ci, pm25_table=self.pm25_table))
            primary = ~np.isnan(conc[0])
            sub[m] = np.where(primary, t.round_half_up(x), np.nan)
            complete[m] = primary
        return sub, complete

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
            if not (self.pollutant == p).any():
                continue
            own = (self.pollutant[s] == p) & np.isfinite(sub)
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

    def _nowcast(self, hourly: F64, s: I32, ts: I64) -> list[Derived]:
        pm = np.isin(self.pollutant[s], PM)
        if not pm.any():
            return []
        h = hourly[pm, :c.NOWCAST_HOURS]
        src = s[pm]
        nc = np.where(self.pollutant[src] == 0, t.nowcast(h, decimals=1),
                      t.nowcast(h, decimals=0))
        self._count(1, src[np.isnan(nc)])
        return [derived("nowcast", ts[pm], src, nc)]

    def _count(self, j: int, series: I32) -> None:
        if len(series):
            self.incomplete[:, j] += np.bincount(series, minlength=len(self.incomplete))

    def counts(self) -> dict[str, int]:
        """Readings left without a sub-index (or NowCast) because an average was incomplete,
        per pollutant of the table."""
        out: dict[str, int] = {}
        for p in np.unique(self.pollutant[self.own]).tolist():
            mine = self.pollutant == p
            out[f"aqi_incomplete_{POLLUTANTS[p]}"] = int(self.incomplete[mine, 0].sum())
            if self.std == "aqi" and p in PM:
                out[f"aqi_incomplete_{POLLUTANTS[p]}_nowcast"] = int(
                    self.incomplete[mine, 1].sum())
        return out

    def state(self) -> State:
        return {**self.rings.state("ring_"), "sub": self.sub, "sub_ts": self.sub_ts,
                "incomplete": self.incomplete}

    def restore(self, state: State) -> None:
        self.rings.restore(state, "ring_")
        self.sub = np.asarray(state["sub"], np.float64).copy()
        self.sub_ts = np.asarray(state["sub_ts"], np.int64).copy()
        if "incomplete" in state:  # snapshots from before the completeness rules have none
            self.incomplete = np.asarray(state["incomplete"], np.int64).copy()

    @property
    def last_ts(self) -> I64:
        """Per series, the newest timestamp the state includes (`Replayable`)."""
        return self.rings.last_ts

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs (`ingest.warmup`): the 24 hours kept."""
        return np.where(self.own, 24 * 3600.0, 0.0)

    def replayed(self, *, catch_up: bool) -> None:
        """After a replay: what it found incomplete counts only when it caught up on readings
        the lost run had counted (``catch_up``); a full warm-up starts the counters at 0."""
        if not catch_up:
            self.incomplete[:] = 0
