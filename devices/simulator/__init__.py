"""The simulator: a whole regency's devices behaving like the real thing (``pantau simulate``).

- `world.World`: weather (diurnal temperature and humidity, afternoon storms, a flood front),
  rivers (rain fills each gauge's reservoir, the wave runs downstream with a lag), rush-hour
  traffic and PM2.5, street lights at night, solar batteries; numpy arrays, one tick at a time.
- `engine.Simulator`: schedules, faults (stuck, spikes, dropouts, offline with LWT, clock skew,
  malformed payloads) and payloads; deterministic for a seed.
- `scenarios`: ``normal``, ``flood``, ``haze``, ``outage``; fault specs.
- `publish`: MQTT, one client per device (own client id, LWT) or multiplexed; pacing, progress.
"""

from devices.simulator.engine import Message, Simulator
from devices.simulator.scenarios import FAULTS, SCENARIOS, Scenario, SimulatorError, parse_faults

__all__ = ["FAULTS", "SCENARIOS", "Message", "Scenario", "Simulator", "SimulatorError",
           "parse_faults"]
