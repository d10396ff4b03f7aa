"""River gauges: water level, flood stage (0 Normal, 1 Waspada, 2 Siaga, 3 Awas), rate of rise.

Per gauge (a device with ``waspada_cm``, ``siaga_cm``, ``awas_cm`` in its params):

- level: the ``level_cm`` reading, or ``reference_height_cm - distance_cm`` for an ultrasonic
  gauge without ``level_cm`` (derived as ``level_cm``);
- stage k is *entered* once the level has stayed at or above threshold k for
  ``min_duration_s`` (every reading in between at or above it, the first one starting the
  clock) and *left* only when the level falls below threshold k minus ``hysteresis_cm``;
  the stage is the highest active one (derived as ``flood_stage``);
- rate of rise in cm/h: least-squares slope over the readings of the last ``rise_window_s``,
  NaN until the window holds 3 readings spanning a quarter of it (``level_rise_cm_h``); made
  robust by leaving out the readings the quality step flagged as spikes (`FLAG_SPIKE`; with
  the default chain it runs before this one), so one bad echo does not swing the rate. The
  window is `RISE_BUCKETS` buckets of ``rise_window_s / 30`` (`processors.domain.rolling`):
  ``(T - rise_window_s, t]`` with ``T`` the reading's time rounded up to a bucket (1 minute by
  default; ``T = t`` for a reading on the minute), and the state keeps the least-squares sums
  per bucket, not the readings, so a gauge reporting 100 times too fast costs no more memory.

Defaults: ``hysteresis_cm`` 5, ``min_duration_s`` 300, ``rise_window_s`` 1800. State (latches,
the start of each run above a threshold, the fit's sums per bucket) is snapshotted with
``state()``, so a restart neither resets a stage nor re-enters it.
"""

from __future__ import annotations

import numpy as np

from core.batch import FLAG_SPIKE, TelemetryBatch
from core.state import State
from devices.series import DerivedMetric, SeriesTable
from processors.domain.derived import Output, derived
from processors.domain.rolling import COUNT, Frame, Rings
from processors.domain.segments import (
    F64,
    I32,
    I64,
    IP,
    NEVER,
    B,
    ends,
    fresh_rows,
    last_true_index,
    previous,
)

S = 1_000_000_000
RISE_BUCKETS = 30  # buckets per rise window: its resolution
FIT = ("n", "v", "t", "tt", "tv")  # per bucket: readings in the fit, sums of level, time, ...
LEVELS = ("waspada_cm", "siaga_cm", "awas_cm")


class FloodStage:
    def __init__(self, table: SeriesTable, *, hysteresis_cm: float = 5.0,
                 min_duration_s: float = 300.0, rise_window_s: float = 1800.0) -> None:
        n = len(table)
        self.gauge = np.zeros(n, bool)
        self.from_distance = np.zeros(n, bool)
        self.ref = np.full(n, np.nan)
        self.thr = np.full((n, 3), np.nan)
        self.hyst = np.full(n, hysteresis_cm)
        self.min_dur = np.full(n, int(min_duration_s * S), np.int64)
        window = np.full(n, int(rise_window_s * S), np.int64)
        for sid in range(n):  # once per series at construction, never per reading
            dev, metric = table.devices[int(table.device_index[sid])], table.metric[sid]
            p = dev.params
            distance = metric == "distance_cm" and dev.metric("level_cm") is None \
                and "reference_height_cm" in p
            if metric != "level_cm" and not distance:
                continue
            self.gauge[sid], self.from_distance[sid] = True, distance
            self.ref[sid] = p.get("reference_height_cm", np.nan)
            if all(k in p for k in LEVELS):
                self.thr[sid] = [p[k] for k in LEVELS]
                if not np.all(np.diff(self.thr[sid]) > 0):
                    raise ValueError(f"device {dev.id!r}: flood thresholds must rise "
                                     f"waspada < siaga < awas, got {self.thr[sid].tolist()}")
            self.hyst[sid] = p.get("hysteresis_cm", hysteresis_cm)
            self.min_dur[sid] = int(p.get("min_duration_s", min_duration_s) * S)
            window[sid] = int(p.get("rise_window_s", rise_window_s) * S)
        self.window = window
        self.rings = Rings(self.gauge, np.maximum(window // RISE_BUCKETS, 1), RISE_BUCKETS,
                           sums=FIT, mins=("first",))
        self.active = np.zeros((n, 3), bool)
        self.run_start = np.full((n, 3), NEVER, np.int64)
        # each device's gauge series (-1: none), for `seed`
        self.gauge_of = np.full(len(table.devices), -1, np.int32)
        self.gauge_of[table.device_index[self.gauge]] = np.flatnonzero(self.gauge)

    def derives(self) -> list[DerivedMetric]:
        return [DerivedMetric("level_cm", False, self.from_distance, "cm"),
                DerivedMetric("flood_stage", False, self.gauge & ~np.isnan(self.thr[:, 0])),
                DerivedMetric("level_rise_cm_h", False, self.gauge, "cm/h")]

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.rings.last_ts, order, self.gauge)
        if len(rows) == 0:
            return Output(batch)
        s, t, raw = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        level = np.where(self.from_distance[s], self.ref[s] - raw, raw)
        # a reading the quality step flagged as a spike stays out of the fit (NaN)
        spike = (batch.flags[rows] & FLAG_SPIKE) != 0
        rise = self._rise(s, t, np.where(spike, np.nan, level))
        stage = self._stage(s, t, level)
        dist, thr = self.from_distance[s], ~np.isnan(stage)
        return Output(batch, (
            derived("level_cm", t[dist], s[dist], level[dist], per_series=False),
            derived("flood_stage", t[thr], s[thr], stage[thr], per_series=False),
            derived("level_rise_cm_h", t, s, rise, per_series=False)))

    def _rise(self, s: I32, t: I64, level: F64) -> F64:
        """Least-squares slope (cm/h) over each row's window; NaN levels are left out."""
        f = self.rings.frame(s, t)
        g = self.rings.width[s]
        w = np.isfinite(level).astype(np.float64)
        v = np.where(w > 0, level, 0.0)
        tau = ((t - (f.b * g)) / S) * w  # seconds into the reading's bucket
        values = {"n": w, "v": v, "t": tau, "tt": tau * tau, "tv": tau * v,
                  "first": (t - f.b * g).astype(np.float64)}
        n, st, stt, sv, stv, first = _window_sums(f, s, t, g, values)
        self.rings.fold(f, values)
        den = n * stt - st * st
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(den > 1e-12 * np.maximum(n * stt, 1.0), (n * stv - st * sv) / den,
                             np.nan)
        enough = (n >= 3) & (first * 4 >= self.window[s])
        return np.where(enough, slope * 3600.0, np.nan)

    def _stage(self, s: I32, t: I64, level: F64) -> F64:
        """Advance the three threshold latches over the sorted rows; highest active stage."""
        last = ends(s)
        active = np.zeros((len(s), 3), bool)
        for k in range(3):  # three thresholds, each vectorised over every row
            thr = self.thr[s, k]
            above: B = level >= thr
            in_run = self.run_start[:, k] != NEVER
            started = above & ~previous(above, s, in_run)
            idx = last_true_index(started, s)
            start_ts = np.where(idx >= 0, t[idx], self.run_start[s, k])
            enter = above & (t - start_ts >= self.min_dur[s])
            leave = level < thr - self.hyst[s]
            ev = last_true_index(enter | leave, s)
            active[:, k] = np.where(ev >= 0, enter[ev], self.active[s, k])
            self.active[s[last], k] = active[last, k]
            self.run_start[s[last], k] = np.where(above[last], start_ts[last], NEVER)
        stage = np.where(active[:, 2], 3.0, np.where(active[:, 1], 2.0,
                                                      np.where(active[:, 0], 1.0, 0.0)))
        return np.where(np.isnan(self.thr[s, 0]), np.nan, stage)

    # -- warm-up from stored data (`ingest.warmup`) ------------------------------------------
    @property
    def last_ts(self) -> I64:
        """Per series, the newest timestamp the state includes (`Replayable`)."""
        return self.rings.last_ts

    def lookback_s(self) -> F64:
        """Per series, how much recent history a replay needs: the rise window and the
        minimum duration of a stage (plus one interval for the reading before)."""
        need = np.maximum(self.window, self.min_dur) / S
        return np.where(self.gauge, need, 0.0)

    def seeds(self) -> tuple[str, ...]:
        """Derived fields whose last stored value before a replay seeds the state: a stage
        latched before the replayed window is kept by its hysteresis, which the window's
        readings alone may not show (a level inside the band under a threshold)."""
        return ("flood_stage",)

    def seed(self, name: str, device: I32, value: F64) -> None:
        """Latch ``value`` (a stored ``flood_stage``) for each ``device`` (index into the
        registry's devices) before its readings are replayed."""
        if name != "flood_stage":
            raise ValueError(f"flood: nothing to seed from {name!r}")
        sid = self.gauge_of[device]
        ok = (sid >= 0) & np.isfinite(value)
        sid, stage = sid[ok], np.clip(np.rint(value[ok]), 0, 3).astype(np.int64)
        self.active[sid] = np.arange(3) < stage[:, None]

    def state(self) -> State:
        return {**self.rings.state("rise_"), "active": self.active,
                "run_start": self.run_start}

    def restore(self, state: State) -> None:
        self.rings.restore(state, "rise_")
        self.active = np.asarray(state["active"], bool).copy()
        self.run_start = np.asarray(state["run_start"], np.int64).copy()


def _window_sums(f: Frame, s: I32, t: I64, g: I64, values: dict[str, F64]
                 ) -> tuple[F64, F64, F64, F64, F64, F64]:
    """Per row, over its window (the last `RISE_BUCKETS` buckets, up to the row): readings in
    the fit, sums of time, time², level and time x level (time in s relative to the row, so
    the numbers stay small), and how long ago (ns) the window's first reading was."""
    lo = f.b - RISE_BUCKETS
    # the state, once per (series, bucket): each bucket's sums moved from its start to the
    # group's bucket start G, then to each row's time (d): one gather per bucket, not per row
    gs, group = f.groups()
    gg = g[gs]
    col = f.base[gs, None] + np.arange(RISE_BUCKETS)
    seg = f.seg[gs]
    inside = (col > lo[gs, None]) & (f.state(COUNT)[seg] > 0)
    c_ns = (col - f.b[gs, None]) * gg[:, None]  # bucket start relative to G, <= 0
    c = c_ns / S
    n_b, t_b, v_b = (np.where(inside, f.state(k)[seg], 0.0) for k in ("n", "t", "v"))
    tt_b, tv_b = (np.where(inside, f.state(k)[seg], 0.0) for k in ("tt", "tv"))
    n_g, v_g = n_b.sum(1), v_b.sum(1)
    t_g = (t_b + n_b * c).sum(1)
    tt_g = (tt_b + 2 * c * t_b + n_b * c * c).sum(1)
    tv_g = (tv_b + c * v_b).sum(1)
    first_g = np.where(inside, c_ns + f.state("first")[seg], np.inf).min(1)
    d_ns = f.b * g - t  # G relative to the row
    d = d_ns / S
    n, sv = n_g[group], v_g[group]
    st = t_g[group] + n * d
    stt = tt_g[group] + 2 * d * t_g[group] + n * d * d
    stv = tv_g[group] + d * sv
    first_st = first_g[group] + d_ns
    # the batch: this series' rows in the window up to the row, from its first row's time
    p = f.first_after(lo)
    rows = np.arange(len(s))
    a = t[f.seg0]
    d = (a - t) / S
    x = (t - a) / S * values["n"]

    def between(y: F64) -> F64:
        pre = np.concatenate([[0.0], np.cumsum(y)])
        out: F64 = pre[rows + 1] - pre[p]
        return out

    nb, sx, sxx = between(values["n"]), between(x), between(x * x)
    svb, sxv = between(values["v"]), between(x * values["v"])
    n_all = n + nb
    st_all = st + sx + nb * d
    stt_all = stt + sxx + 2 * d * sx + nb * d * d
    stv_all = stv + sxv + d * svb
    first = np.maximum(-first_st, (t - t[p]).astype(np.float64))
    return n_all, st_all, stt_all, sv + svb, stv_all, first
