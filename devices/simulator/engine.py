"""`Simulator`: the regency's devices as a deterministic stream of MQTT messages.

``Simulator(registry, scenario=..., seed=..., start_s=...)`` holds a `World` and a schedule
(next report time per device, as arrays). `advance(until_s)` runs every tick up to
``until_s`` and returns the messages due, in order: telemetry JSON
``{"ts": <ms>, "values": {...}}`` on ``<prefix>/<site>/<id>/telemetry`` stamped with the
device's own clock, and ``online``/``offline`` (retained) on ``.../status``. The same registry,
scenario, faults, seed and start give the same messages, byte for byte, whatever the pacing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from devices import topics
from devices.registry import Registry
from devices.series import SeriesTable
from devices.simulator.scenarios import FAULTS, SimulatorError, scenario
from devices.simulator.world import HOUR, World

FLOOD_INTERVAL_S = 30.0  # gauges above Waspada report this often ("flood mode")
MALFORMED = (b'{"ts": 17000000', b"\xff\xfe\x00garbage", b'{"values": {"x": 1}}',
             b'{"ts": 1700000000000, "values": [1, 2]}', b"[]", b"level_cm=oops")
_INT_UNITS = frozenset(("bool", "count"))


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message: ``kind`` is ``telemetry``, ``online`` or ``offline``."""

    device: str
    topic: str
    payload: bytes
    kind: str
    ts_ns: int

    @property
    def retain(self) -> bool:
        return self.kind != "telemetry"


class Simulator:
    """Not thread-safe; one caller advances it. ``counts`` tallies what it produced."""

    def __init__(self, registry: Registry, *, scenario_name: str = "normal", seed: int = 0,
                 start_s: float, faults: Mapping[str, float] | None = None,
                 rivers: Mapping[str, tuple[str, ...]] | None = None, prefix: str = "pantau",
                 tick_s: float = 5.0) -> None:
        self.registry, self.tick_s = registry, tick_s
        self.rng = np.random.default_rng(seed)
        scn = scenario(scenario_name)
        self.world = World(registry, rivers or {}, scn, self.rng, start_s, tick_s)
        devs = registry.devices
        n = len(devs)
        self.table = SeriesTable.from_registry(registry)
        starts = np.searchsorted(self.table.device_index, np.arange(n + 1))
        self._start, self._stop = starts[:-1], starts[1:]
        self._keys = [[f'"{m.name}":'.encode() for m in d.metrics] for d in devs]
        self._ints = [[m.unit in _INT_UNITS for m in d.metrics] for d in devs]
        self._vmin, self._vmax = self.table.vmin, self.table.vmax
        pairs = [topics.device_topics(prefix, d.site, d.id) for d in devs]
        self._tele = [tele for tele, _ in pairs]
        self._status = [status for _, status in pairs]
        self.interval = np.array([d.interval_s for d in devs])
        self.due = start_s + self.rng.uniform(0.0, 1.0, n) * self.interval
        self.waspada = np.array([d.params.get("waspada_cm", np.inf) for d in devs])
        # Faults: a random subset of devices per kind, drawn once.
        faults = dict(faults or {})
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise SimulatorError(f"unknown faults {sorted(unknown)}")
        self.fault = {k: self.rng.random(n) < faults.get(k, 0.0) for k in FAULTS}
        self.stuck_from = start_s + self.rng.uniform(0, HOUR, n)
        self.frozen = np.full(len(self.table), np.nan)
        self.skew_ns = (self.rng.choice([-1, 1], n) * self.rng.uniform(120, 900, n)
                        * 1e9).astype(np.int64) * self.fault["skew"]
        self.off_from = np.where(self.fault["offline"],
                                 start_s + self.rng.uniform(0.1, 2.0, n) * HOUR, np.inf)
        self.off_until = self.off_from + self.rng.uniform(0.25, 1.0, n) * HOUR
        if scn.outage_sites:
            sites = sorted({d.site for d in devs})
            hit = self.rng.choice(sites, min(scn.outage_sites, len(sites)), replace=False)
            out = np.isin([d.site for d in devs], hit)
            self.off_from[out] = start_s + scn.outage_start_h * HOUR
            self.off_until[out] = self.off_from[out] + scn.outage_h * HOUR
        self.online = np.zeros(n, dtype=bool)
        self.counts = {"telemetry": 0, "online": 0, "offline": 0, "dropped": 0,
                       "malformed": 0}

    @property
    def now_s(self) -> float:
        return self.world.t

    def advance(self, until_s: float) -> list[Message]:
        """Run the ticks up to ``until_s`` (simulated epoch seconds); return their messages."""
        out: list[Message] = []
        while self.world.t + self.tick_s <= until_s:
            self.world.advance()
            self._tick(out)
        return out

    def _status_changes(self, t: float, out: list[Message]) -> None:
        alive = ~((self.off_from <= t) & (t < self.off_until)) & (self.world.soc > 0.02)
        for i in np.flatnonzero(alive != self.online).tolist():
            kind = "online" if alive[i] else "offline"
            out.append(Message(self.registry.devices[i].id, self._status[i], kind.encode(),
                               kind, int(t * 1e9)))
            self.counts[kind] += 1
        self.online = alive

    def _tick(self, out: list[Message]) -> None:
        t = self.world.t
        self._status_changes(t, out)
        due = np.flatnonzero(self.due <= t)
        if not len(due):
            return
        ts = self.due[due].copy()
        step = self.interval[due]
        gauges = due[self.world.gauge_of[due] >= 0]
        if len(gauges):  # flood mode: faster reports above Waspada
            fast = np.isin(due, gauges[self.world.level(gauges) >= self.waspada[gauges]])
            step[fast] = np.minimum(step[fast], FLOOD_INTERVAL_S)
        self.due[due] = np.maximum(ts + step, t)
        sent = due[self.online[due]]
        ts = ts[self.online[due]]
        keep = ~(self.fault["dropouts"][sent] & (self.rng.random(len(sent)) < 0.3))
        self.counts["dropped"] += int((~keep).sum())
        sent, ts = sent[keep], ts[keep]
        values = self._values(sent, t)
        bad = self.fault["malformed"][sent] & (self.rng.random(len(sent)) < 0.5)
        pick = self.rng.integers(0, len(MALFORMED), len(sent))
        ts_ns = (ts * 1e9).astype(np.int64) + self.skew_ns[sent]
        for j, i in enumerate(sent.tolist()):
            if bad[j]:
                payload = MALFORMED[pick[j]]
                self.counts["malformed"] += 1
            else:
                payload = self._encode(i, int(ts_ns[j]), values, int(self._start[i]))
            out.append(Message(self.registry.devices[i].id, self._tele[i], payload,
                               "telemetry", int(ts[j] * 1e9)))
        self.counts["telemetry"] += len(sent)

    def _encode(self, i: int, ts_ns: int, values: dict[int, float], a: int) -> bytes:
        parts = []
        for k, (key, is_int) in enumerate(zip(self._keys[i], self._ints[i], strict=True)):
            v = values[a + k]
            parts.append(key + (b"%d" % round(v) if is_int else b"%.2f" % v))
        return b'{"ts":%d,"values":{%s}}' % (ts_ns // 1_000_000, b",".join(parts))

    def _values(self, sent: np.ndarray, t: float) -> dict[int, float]:
        """Series id -> value for every metric of the devices ``sent`` (vectorised per metric)."""
        if not len(sent):
            return {}
        counts = self._stop[sent] - self._start[sent]
        series = np.repeat(self._start[sent] - np.cumsum(counts) + counts, counts) \
            + np.arange(counts.sum())
        owner = self.table.device_index[series].astype(np.intp)
        v = np.zeros(len(series))
        names = np.array(self.table.metric, dtype=object)[series]
        for name in dict.fromkeys(names.tolist()):
            m = names == name
            got = self.world.sample(name, owner[m])
            if got is None:  # a metric the model does not know: mid-range noise
                lo, hi = self._vmin[series[m]], self._vmax[series[m]]
                got = np.where(np.isfinite(lo + hi), (lo + hi) / 2, 0.0) \
                    + self.rng.normal(0, 1, int(m.sum()))
            v[m] = got
        v = np.clip(v, self._vmin[series], self._vmax[series])
        spike = self.fault["spikes"][owner] & (self.rng.random(len(series)) < 0.05)
        v[spike] += np.maximum(np.abs(v[spike]), 10.0) * self.rng.uniform(3, 8, int(spike.sum()))
        stuck = self.fault["stuck"][owner] & (self.stuck_from[owner] <= t)
        fresh = stuck & np.isnan(self.frozen[series])
        self.frozen[series[fresh]] = v[fresh]
        v[stuck] = self.frozen[series[stuck]]
        return dict(zip(series.tolist(), v.tolist(), strict=True))
