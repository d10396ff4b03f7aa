"""The physical state of the regency, advanced in fixed ticks for every device at once.

All state is numpy arrays indexed by device (or by gauge); `World.advance` moves it one tick
and `World.sample` reads one metric for a set of devices. Nothing loops over devices in
Python. Time is simulated epoch seconds passed in; randomness comes from the injected
`numpy.random.Generator` only, so a seed fixes the whole history.

Rivers: each gauge holds a linear reservoir fed by the rain over it (time constant ``TAU_H``);
its flood index is ``(1 - W) * local + W * upstream index LAG earlier``, where the lag is the
river distance over the wave celerity. Level = base + 1.3 * (awas - base) * tanh(index), so a
sustained ~25 mm/h reaches Awas and a passing shower only stirs the river. The rain a
reservoir gets is its catchment's (``CATCHMENT_DEG``), not the point rain at the gauge.

Vaccine fridges (kind ``cold_chain``) are `devices.simulator.coldchain.ColdChain`: their
metrics (and their monitors' backup batteries) come from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from devices.registry import Registry
from devices.simulator.coldchain import ColdChain
from devices.simulator.scenarios import Scenario

F = npt.NDArray[np.float64]
I = npt.NDArray[np.intp]  # noqa: E741
HOUR = 3600.0
WIB = 7 * HOUR  # Blitar's local time, for the diurnal cycles
TAU_H, R0_MMPH, W_UP, CELERITY_MS = 2.0, 25.0, 0.6, 1.5
CATCHMENT_DEG = 0.2  # ~22 km: the rain a gauge's river gathers within the regency
KELUD = (-7.95, 112.30)


def local_hour(t: float) -> float:
    return ((t + WIB) % 86400.0) / HOUR


def rush(h: float) -> float:
    """Traffic as a fraction of the daily peak: 07:00 and 16:45 rush hours, a midday plateau."""
    morning = math.exp(-((h - 7.0) ** 2) / (2 * 0.8**2))
    evening = 0.95 * math.exp(-((h - 16.75) ** 2) / (2 * 1.1**2))
    return 0.12 + 0.88 * max(morning, evening, 0.45 if 9.5 < h < 15.0 else 0.0)


class World:
    def __init__(self, registry: Registry, rivers: Mapping[str, tuple[str, ...]],
                 scn: Scenario, rng: np.random.Generator, t0: float, tick_s: float) -> None:
        devs = registry.devices
        n = len(devs)
        self.scn, self.rng, self.t0, self.dt = scn, rng, t0, tick_s
        self.lat = np.array([d.lat for d in devs])
        self.lon = np.array([d.lon for d in devs])
        self.rain_now = np.zeros(n)
        self.rain_acc = np.zeros(n)
        self.soc = rng.uniform(0.55, 0.95, n)
        self.drain = rng.uniform(0.01, 0.03, n) / 24.0          # state of charge per hour
        self.panel = (rng.random(n) >= scn.dead_panel_fraction).astype(np.float64)
        self.road = rng.uniform(0.5, 1.5, n)                     # traffic exposure / capacity
        self.wind_dir = rng.uniform(0.0, 360.0, n)
        self.lamp_fail = (rng.random(n) < 0.03).astype(np.float64)
        self.storms = np.zeros((0, 6))  # lat, lon, radius, peak, end, (unused)
        self.t = t0
        # Gauges: every device with a level; river order from `rivers`.
        pos = {d.id: i for i, d in enumerate(devs)}
        self.gauges = np.array([i for i, d in enumerate(devs) if d.metric("level_cm")
                                or d.metric("distance_cm")], dtype=np.intp)
        self.gauge_of = np.full(n, -1, dtype=np.intp)
        self.gauge_of[self.gauges] = np.arange(len(self.gauges))
        p = [devs[i].params for i in self.gauges]
        self.base = np.array([q.get("base_level_cm", 150.0) for q in p])
        self.span = np.array([q.get("awas_cm", q.get("base_level_cm", 150.0) + 500.0)
                              for q in p]) - self.base
        self.ref = np.array([q.get("reference_height_cm", 1000.0) for q in p])
        g = len(self.gauges)
        self.up = np.full(g, -1, dtype=np.intp)
        lag = np.zeros(g, dtype=np.intp)
        for ids in rivers.values():
            for a, b in itertools.pairwise(ids):
                ga, gb = self.gauge_of[pos[a]], self.gauge_of[pos[b]]
                km = devs[pos[b]].params.get("river_km", 0) - devs[pos[a]].params.get(
                    "river_km", 0)
                self.up[gb], lag[gb] = ga, max(1, round(km * 1000 / CELERITY_MS / tick_s))
        self.hist = np.zeros((int(lag.max(initial=1)) + 1, g))
        self.lag = lag
        self.store = np.zeros(g)
        self.flood = np.zeros(g)
        self.k = 0
        self.cold = ColdChain(registry, scn, rng, t0)
        self.soc[self.cold.devices] = self.cold.soc

    # -- the weather -----------------------------------------------------------------------
    def _front(self, t: float) -> float:
        s = self.scn
        h = (t - self.t0) / HOUR - s.front_start_h
        if s.front_mmph <= 0 or h < 0:
            return 0.0
        up = min(h / s.front_ramp_h, 1.0)
        down = max(0.0, 1.0 - max(0.0, h - s.front_ramp_h - s.front_hold_h) / 4.0)
        return s.front_mmph * up * down

    def _spawn_storms(self, h: float) -> None:
        rate = self.scn.storm_rate * max(0.0, math.sin(math.pi * (h - 11.0) / 10.0)) ** 2
        if self.rng.random() < rate * self.dt / HOUR:
            cell = [self.rng.uniform(-8.3, -7.95), self.rng.uniform(112.0, 112.45),
                    self.rng.uniform(0.03, 0.08), self.rng.uniform(5.0, 40.0),
                    self.t + self.rng.uniform(0.3, 1.5) * HOUR, 0.0]
            self.storms = np.vstack([self.storms, cell])
        self.storms = self.storms[self.storms[:, 4] > self.t]

    def advance(self) -> None:
        """One tick: storms, rain, rivers, batteries, wind."""
        self.t += self.dt
        self.k += 1
        h = local_hour(self.t)
        self._spawn_storms(h)
        s = self.storms
        d2 = (self.lat[None, :] - s[:, :1]) ** 2 + (self.lon[None, :] - s[:, 1:2]) ** 2
        rain = cells = (s[:, 3:4] * np.exp(-d2 / (2 * s[:, 2:3] ** 2))).sum(axis=0)
        front = self._front(self.t)
        if front:
            dk = (self.lat - KELUD[0]) ** 2 + (self.lon - KELUD[1]) ** 2
            rain = rain + front * np.exp(-dk / (2 * 0.35**2))
        self.rain_now = rain
        self.rain_acc += rain * self.dt / HOUR
        dt_h = self.dt / HOUR
        # A river answers the rain over its catchment, not the point rain at its gauge: a
        # convective cell (3-9 km) wets a small part of it, so a shower over the gauge only
        # stirs the river. The cell's Gaussian averaged over a Gaussian catchment of
        # CATCHMENT_DEG. A front (0.35 deg, regency-wide) wets whole catchments: its point
        # rain stands for theirs (and the flood scenario's stages are set by it).
        w2 = s[:, 2:3] ** 2 + CATCHMENT_DEG**2
        basin = (s[:, 3:4] * s[:, 2:3] ** 2 / w2 * np.exp(-d2[:, self.gauges] / (2 * w2))
                 ).sum(axis=0) + (rain - cells)[self.gauges]
        local = basin / R0_MMPH
        self.store += dt_h * (local - self.store / TAU_H)
        q = self.store / TAU_H
        k, hl = self.k, len(self.hist)
        upstream = self.hist[(k - self.lag) % hl, np.maximum(self.up, 0)]
        self.flood = np.where(self.up >= 0, (1 - W_UP) * q + W_UP * upstream, q)
        self.hist[k % hl] = self.flood
        sun = max(0.0, math.sin(math.pi * (h - 6.0) / 12.0))
        cloud = np.minimum(rain / 10.0, 1.0)
        self.soc = np.clip(self.soc + dt_h * (0.12 * sun * (1 - 0.7 * cloud) * self.panel
                                             - self.drain), 0.0, 1.0)
        self.wind_dir = (self.wind_dir + self.rng.normal(0.0, 3.0, len(self.lat))) % 360.0
        self.cold.advance(self.t, self.dt, h)
        self.soc[self.cold.devices] = self.cold.soc

    # -- readings --------------------------------------------------------------------------
    def level(self, idx: I) -> F:
        """River level (cm) of devices ``idx`` (all gauges), without sensor noise."""
        g = self.gauge_of[idx]
        level: F = self.base[g] + 1.3 * self.span[g] * np.tanh(self.flood[g])
        return level

    def take_rain(self, idx: I) -> F:
        """Rain (mm) since each device's last report; resets their buckets."""
        out = self.rain_acc[idx].copy()
        self.rain_acc[idx] = 0.0
        return out

    def sample(self, metric: str, idx: I) -> F | None:
        """Noiseless-plus-noise readings of ``metric`` for devices ``idx``; None if unknown
        (for all of them: a fridge's metric the fridge model lacks is left to the caller too)."""
        fridge = self.cold.of[idx]
        cold = fridge >= 0
        if not cold.any():
            return self._sample(metric, idx)
        got = self.cold.sample(metric, fridge[cold], self.t)
        rest = self._sample(metric, idx[~cold]) if not cold.all() else np.zeros(0)
        if got is None or rest is None:
            return None
        out = np.empty(len(idx))
        out[cold], out[~cold] = got, rest
        return out

    def _sample(self, metric: str, idx: I) -> F | None:
        h, n, r = local_hour(self.t), len(idx), self.rng
        day = math.sin(2 * math.pi * (h - 9.0) / 24.0)
        sun = max(0.0, math.sin(math.pi * (h - 6.0) / 12.0))
        wet = np.minimum(self.rain_now[idx] / 10.0, 1.0)
        traffic = rush(h) * self.road[idx]
        hz = self.scn.haze_ug * min(1.0, (self.t - self.t0) / HOUR / self.scn.haze_ramp_h) \
            * (0.7 + 0.3 * (1.0 - sun))
        north = -15.0 * (self.lat[idx] + 8.13)  # the Kelud slopes are cooler
        night = 1.0 if h < 5.75 or h >= 17.75 else 0.0
        match metric:
            case "temperature_c":
                return 24.5 + 5.0 * day - 2.5 * wet + north + r.normal(0, 0.3, n)
            case "humidity_pct":
                return np.clip(80 - 14 * day + 15 * wet + r.normal(0, 2, n), 25, 100)
            case "pressure_hpa":
                return 1009 + 1.2 * math.cos(4 * math.pi * (h - 10) / 24) + 2 * north \
                    + r.normal(0, 0.2, n)
            case "wind_ms":
                return np.maximum(1.2 + 1.8 * sun + 3 * wet + r.normal(0, 0.6, n), 0.0)
            case "wind_dir_deg":
                return self.wind_dir[idx].copy()
            case "rain_mm":
                return self.take_rain(idx)
            case "level_cm":
                return self.level(idx) + r.normal(0, 1.5, n)
            case "distance_cm":
                return self.ref[self.gauge_of[idx]] - self.level(idx) + r.normal(0, 1.5, n)
            case "battery_v":
                return 11.8 + 1.0 * self.soc[idx] + 0.3 * sun * self.panel[idx] \
                    + r.normal(0, 0.02, n)
            case "pm25":
                base = (12 + 25 * traffic + 15 * (1 - sun)) * (1 - 0.6 * wet)
                return base * r.lognormal(0, 0.15, n) + hz
            case "pm10":
                return (20 + 40 * traffic) * (1 - 0.5 * wet) * r.lognormal(0, 0.15, n) + 1.3 * hz
            case "co":
                return 500 + 1800 * traffic + 8 * hz + r.normal(0, 50, n)
            case "no2":
                return np.maximum(15 + 45 * traffic + r.normal(0, 4, n), 0.0)
            case "o3":
                return np.maximum(25 + 95 * sun * (1 - wet) + r.normal(0, 5, n), 0.0)
            case "so2":
                return np.maximum(8 + 0.3 * hz + r.normal(0, 2, n), 0.0)
            case "vehicles":
                return r.poisson(60 * traffic).astype(np.float64)
            case "avg_speed_kmh":
                return np.maximum(50 * (1 - 0.5 * traffic) + r.normal(0, 3, n), 5.0)
            case "on":
                return np.full(n, night)
            case "fault":
                return self.lamp_fail[idx].copy()
            case "power_w":
                return night * 90 * (1 - self.lamp_fail[idx]) * (1 + r.normal(0, 0.01, n))
        return None
