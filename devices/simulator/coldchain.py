"""Puskesmas vaccine refrigerators (devices of kind ``cold_chain``), one tick at a time.

Each fridge is a box that leaks heat to the room (``ROOM_C``, time constant ``LEAK_H``) and,
while the thermostat asks for it (on at ``ON_C``, off at ``OFF_C``) and mains power is there, a
compressor that pulls it toward ``EVAP_C`` (``COOL_H``). During service hours the staff open
the door about ``OPENINGS_PER_H`` times an hour for 20-60 s (room air rushes in: ``DOOR_H``).
A normal day stays between about +2.5 and +7 degC. With mains gone the fridge warms toward the
room: from +3..+5 it passes +8 after 2.5-3.5 h and is near +18 after 12 h, i.e. past the
Fridge-tag heat alarm (more than 10 h above +8, DOMAIN.md). A thermostat stuck on drives it
toward -8 degC: below -0.5 after about 1.5 h (the freeze alarm after 60 min more).

The remote monitor runs on mains with a 12 V backup battery (float-charged at ~13.5 V while
mains is on, drawn down slowly without it); it dies, like any device, when the battery is
empty (`soc`, read by the engine).

Scenario knobs (`devices.simulator.scenarios.Scenario`): ``power_cut_sites`` Puskesmas lose
mains at ``power_cut_start_h`` for ``power_cut_h``; ``freeze_fridges`` other fridges get a
stuck thermostat at ``freeze_start_h`` for ``freeze_h``. Arrays are indexed by fridge; time is
passed in and randomness comes from the injected generator.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from devices.registry import Registry
from devices.simulator.scenarios import Scenario

F = npt.NDArray[np.float64]
I = npt.NDArray[np.intp]  # noqa: E741
KIND = "cold_chain"
HOUR = 3600.0
ROOM_C, LEAK_H, EVAP_C, COOL_H, DOOR_H = 28.0, 15.0, -15.0, 3.0, 0.5
ON_C, OFF_C = 5.0, 3.0
SERVICE_HOURS = (7.5, 14.0)  # local time (WIB)
OPENINGS_PER_H = 1.0
CHARGE_PER_H, DRAIN_PER_H = 0.2, 0.01  # backup battery, state of charge per hour


class ColdChain:
    """The fridges of ``registry`` (devices of kind ``cold_chain``); ``devices`` are their
    device indices, ``of[device]`` a fridge index or -1."""

    def __init__(self, registry: Registry, scn: Scenario, rng: np.random.Generator,
                 t0: float) -> None:
        devs = registry.devices
        self.rng = rng
        self.devices: I = np.array([i for i, d in enumerate(devs) if d.kind == KIND], np.intp)
        self.of: I = np.full(len(devs), -1, np.intp)
        self.of[self.devices] = np.arange(len(self.devices))
        m = len(self.devices)
        self.temp: F = rng.uniform(3.5, 4.5, m)
        self.cooling = np.zeros(m, bool)
        self.door_until: F = np.full(m, -np.inf)
        self.soc: F = rng.uniform(0.85, 1.0, m)
        self.mains = np.ones(m, bool)
        never = np.full(m, np.inf)
        self.cut_from, self.cut_until = never.copy(), never.copy()
        self.stuck_from, self.stuck_until = never.copy(), never.copy()
        sites = np.array([devs[i].site for i in self.devices.tolist()], dtype=object)
        if m and scn.power_cut_sites:
            hit = rng.choice(sorted(set(sites.tolist())), min(scn.power_cut_sites, m),
                             replace=False)
            cut = np.isin(sites, hit)
            self.cut_from[cut] = t0 + scn.power_cut_start_h * HOUR
            self.cut_until[cut] = self.cut_from[cut] + scn.power_cut_h * HOUR
        spare = np.flatnonzero(~np.isfinite(self.cut_from))
        if len(spare) and scn.freeze_fridges:
            hit = rng.choice(spare, min(scn.freeze_fridges, len(spare)), replace=False)
            self.stuck_from[hit] = t0 + scn.freeze_start_h * HOUR
            self.stuck_until[hit] = self.stuck_from[hit] + scn.freeze_h * HOUR

    def __len__(self) -> int:
        return len(self.devices)

    def advance(self, t: float, dt: float, local_h: float) -> None:
        """Move every fridge ``dt`` seconds on to ``t`` (``local_h``: the hour, WIB)."""
        m = len(self.devices)
        if not m:
            return
        dt_h = dt / HOUR
        if SERVICE_HOURS[0] <= local_h < SERVICE_HOURS[1]:
            opens = self.rng.random(m) < OPENINGS_PER_H * dt_h
            self.door_until[opens] = t + self.rng.uniform(20.0, 60.0, int(opens.sum()))
        door = self.door_until > t
        self.mains = ~((self.cut_from <= t) & (t < self.cut_until))
        stuck = (self.stuck_from <= t) & (t < self.stuck_until)
        self.cooling = stuck | np.where(self.temp >= ON_C, True,
                                        np.where(self.temp <= OFF_C, False, self.cooling))
        pull = np.where(self.cooling & self.mains, (self.temp - EVAP_C) / COOL_H, 0.0)
        gain = (ROOM_C - self.temp) * (1.0 / LEAK_H + np.where(door, 1.0 / DOOR_H, 0.0))
        self.temp += dt_h * (gain - pull)
        self.soc = np.clip(self.soc + dt_h * np.where(self.mains, CHARGE_PER_H, -DRAIN_PER_H),
                           0.0, 1.0)

    def sample(self, metric: str, k: I, t: float) -> F | None:
        """Readings of ``metric`` for fridges ``k`` at ``t``; None for a metric they lack."""
        n, r = len(k), self.rng
        match metric:
            case "temperature_c":  # the probe in the vaccine compartment
                return self.temp[k] + r.normal(0.0, 0.1, n)
            case "door_open":
                return (self.door_until[k] > t).astype(np.float64)
            case "mains_on":
                return self.mains[k].astype(np.float64)
            case "battery_v":
                return np.where(self.mains[k], 13.5, 11.9 + 0.8 * self.soc[k]) \
                    + r.normal(0.0, 0.02, n)
        return None
