"""The vaccine fridges of the simulator: a normal day stays within +2..+8 degC with door
openings; ``power_cut`` warms the fridges of the Puskesmas that lost mains past +8 degC for
more than 10 hours (the Fridge-tag heat alarm) and freezes one other fridge below -0.5 degC
for more than an hour."""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt

from devices.registry import Registry, default_registry_path, load_registry
from devices.simulator import Simulator
from devices.simulator.coldchain import KIND

FULL = load_registry(default_registry_path())
FRIDGES = Registry(FULL.sites, tuple(d for d in FULL.devices if d.kind == KIND))
T0 = 1_764_288_000.0 - 7 * 3600  # 2025-11-28 00:00 WIB
H = 3600.0


def _readings(scenario: str, hours: float, registry: Registry = FRIDGES
              ) -> tuple[Simulator, dict[str, dict[str, npt.NDArray[np.float64]]]]:
    """Per fridge: ``ts`` (hours from T0) and every metric, as arrays."""
    sim = Simulator(registry, scenario_name=scenario, seed=3, start_s=T0, tick_s=10.0)
    rows: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for m in sim.advance(T0 + hours * H):
        if m.kind == "telemetry" and m.device.startswith("cc-"):
            doc = json.loads(m.payload)
            rows.setdefault(m.device, []).append(((doc["ts"] / 1000 - T0) / H, doc["values"]))
    out = {}
    for device, got in rows.items():
        cols = {k: np.array([v[k] for _, v in got]) for k in got[0][1]}
        out[device] = {"ts": np.array([t for t, _ in got]), **cols}
    return sim, out


def _longest(ts: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> float:
    """The longest run (hours) of successive readings where ``mask`` holds."""
    best, start = 0.0, None
    for t, m in zip(ts.tolist(), mask.tolist(), strict=True):
        start = (t if start is None else start) if m else None
        best = max(best, t - start) if start is not None else best
    return best


def test_the_registry_has_a_fridge_per_puskesmas() -> None:
    sites = [d.site for d in FRIDGES.devices]
    assert len(sites) == len(set(sites)) >= 8
    assert {d.interval_s for d in FRIDGES.devices} <= {300.0, 600.0, 900.0}
    assert all(d.owner.startswith("Dinas Kesehatan") for d in FRIDGES.devices)


def test_a_normal_day_keeps_the_vaccines_between_2_and_8_degrees() -> None:
    _, fridges = _readings("normal", 24)
    assert set(fridges) == {d.id for d in FRIDGES.devices}
    for device, r in fridges.items():
        assert r["temperature_c"].min() > 2.0 and r["temperature_c"].max() < 8.0, device
        assert (r["mains_on"] == 1).all() and (r["battery_v"] > 13).all(), device
        every = np.diff(r["ts"]) * H
        assert every.min() >= 290 and every.max() <= 910, device  # 5-15 minutes
    opened = np.concatenate([r["ts"][r["door_open"] == 1] % 24 for r in fridges.values()])
    assert len(opened) and ((opened >= 7.5) & (opened < 14.1)).all()  # service hours only


def test_a_power_cut_warms_the_fridges_and_a_stuck_thermostat_freezes_one() -> None:
    sim, fridges = _readings("power_cut", 19)
    cold = sim.world.cold
    cut = {FRIDGES.devices[i].id for i in np.flatnonzero(np.isfinite(cold.cut_from))}
    frozen = {FRIDGES.devices[i].id for i in np.flatnonzero(np.isfinite(cold.stuck_from))}
    assert len(cut) == 2 and len({d.site for d in FRIDGES.devices if d.id in cut}) == 2
    assert len(frozen) == 1 and not frozen & cut
    for device, r in fridges.items():
        t, temp = r["ts"], r["temperature_c"]
        off = r["mains_on"] == 0
        if device in cut:
            assert (off == ((t >= 1) & (t < 16))).all(), device  # mains gone 01:00-16:00
            assert _longest(t, temp > 8) > 10, device  # the heat alarm's excursion
            assert temp[-1] < 8, device  # cold again after the power came back
            assert r["battery_v"][off].max() < 13 < r["battery_v"][~off].min(), device
        else:
            assert not off.any() and temp.max() < 8, device
        assert (_longest(t, temp <= -0.5) > 1) == (device in frozen), device


def test_in_the_whole_regency_fridges_and_weather_stations_keep_their_own_models() -> None:
    _, got = _readings("normal", 2, FULL)
    assert set(got) == {d.id for d in FRIDGES.devices}
    assert max(r["temperature_c"].max() for r in got.values()) < 8
    sim = Simulator(FULL, scenario_name="normal", seed=3, start_s=T0 + 12 * H)
    ws = [json.loads(m.payload)["values"] for m in sim.advance(T0 + 12.5 * H)
          if m.device.startswith("ws-") and m.kind == "telemetry"]
    assert ws and min(v["temperature_c"] for v in ws) > 15  # noon in Blitar, not a fridge
