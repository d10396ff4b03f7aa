"""Scenarios (what the weather and the city do) and faults (what the devices do wrong)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.errors import PantauError


class SimulatorError(PantauError):
    """A scenario, fault or option the simulator cannot run; the message says which."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """Knobs of the world model; hours are counted from the simulation start.

    ``storm_rate``: convective cells per hour at the afternoon peak. ``front_mmph``: a
    regency-wide rain band centred on the Kelud slopes, ramping up over ``front_ramp_h`` from
    ``front_start_h``, holding ``front_hold_h``, then easing off. ``haze_ug``: regional PM2.5
    (smoke, ash) added at full strength after ``haze_ramp_h``. ``outage_sites``: districts whose
    network drops (every device there goes offline, LWT) at ``outage_start_h`` for
    ``outage_h``; ``dead_panel_fraction``: devices whose solar panel failed (battery drains
    until the device dies). Cold chain (`devices.simulator.coldchain`): ``power_cut_sites``
    Puskesmas lose mains power at ``power_cut_start_h`` for ``power_cut_h`` (their vaccine
    fridges warm up); ``freeze_fridges`` other fridges get a thermostat stuck on at
    ``freeze_start_h`` for ``freeze_h`` (they freeze).
    """

    name: str
    storm_rate: float = 0.6
    front_mmph: float = 0.0
    front_start_h: float = 0.5
    front_ramp_h: float = 3.0
    front_hold_h: float = 8.0
    haze_ug: float = 0.0
    haze_ramp_h: float = 4.0
    outage_sites: int = 0
    outage_start_h: float = 1.0
    outage_h: float = 2.0
    dead_panel_fraction: float = 0.0
    power_cut_sites: int = 0
    power_cut_start_h: float = 1.0
    power_cut_h: float = 15.0
    freeze_fridges: int = 0
    freeze_start_h: float = 1.0
    freeze_h: float = 5.0


SCENARIOS: Mapping[str, Scenario] = {
    "normal": Scenario("normal"),
    "flood": Scenario("flood", storm_rate=1.5, front_mmph=42.0),
    "haze": Scenario("haze", storm_rate=0.0, haze_ug=160.0),
    "outage": Scenario("outage", outage_sites=2, dead_panel_fraction=0.05),
    # A dry day; mains fails at two Puskesmas for 15 h (their fridges pass +8 degC after ~3 h
    # and the 10-hour heat alarm after ~14 h); a third fridge's thermostat sticks for 5 h.
    "power_cut": Scenario("power_cut", storm_rate=0.0, power_cut_sites=2, freeze_fridges=1),
}

#: Fault kinds and the default fraction of devices that get each (``--fault stuck``).
FAULTS: Mapping[str, float] = {"stuck": 0.05, "spikes": 0.05, "dropouts": 0.05,
                               "offline": 0.02, "skew": 0.05, "malformed": 0.05}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise SimulatorError(f"unknown scenario {name!r}: one of "
                             f"{', '.join(SCENARIOS)}") from None


def parse_faults(specs: Sequence[str]) -> dict[str, float]:
    """``["stuck", "malformed=0.5"]`` -> ``{"stuck": 0.05, "malformed": 0.5}``."""
    out: dict[str, float] = {}
    for spec in specs:
        kind, sep, frac = spec.partition("=")
        if kind not in FAULTS:
            raise SimulatorError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)}")
        try:
            value = float(frac) if sep else FAULTS[kind]
        except ValueError:
            raise SimulatorError(f"fault {spec!r}: {frac!r} is not a fraction") from None
        if not 0.0 <= value <= 1.0:
            raise SimulatorError(f"fault {spec!r}: the fraction must be within [0, 1]")
        out[kind] = value
    return out
