"""The simulator's stream: deterministic, physically sensible, decodable (or not, on demand)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from devices.simulator import Message, Simulator, SimulatorError, parse_faults
from devices.simulator.engine import MALFORMED
from devices.simulator.fleet import grow
from devices.simulator.publish import run
from ingest.decode import Decoder, RowBuffer

PATH = default_registry_path()
REGISTRY = load_registry(PATH)
RIVERS = load_rivers(PATH, REGISTRY)
DECODER = Decoder(SeriesTable.from_registry(REGISTRY))
T0 = 1_764_288_000.0  # 2025-11-28 07:00 WIB


def _sim(scenario: str = "normal", seed: int = 7, **kw: object) -> Simulator:
    return Simulator(REGISTRY, scenario_name=scenario, seed=seed, start_s=T0, rivers=RIVERS,
                     tick_s=10.0, **kw)  # type: ignore[arg-type]


def _stream(sim: Simulator, hours: float) -> list[Message]:
    return sim.advance(T0 + hours * 3600)


def test_same_seed_same_stream_whatever_the_steps() -> None:
    one = _stream(_sim(faults=parse_faults(["spikes", "malformed", "skew"])), 3)
    other = _sim(faults=parse_faults(["spikes", "malformed", "skew"]))
    stepped = [m for k in range(1, 31) for m in other.advance(T0 + k * 360)]
    assert one == stepped
    assert len(one) > 1000
    assert one != _stream(_sim(seed=8, faults=parse_faults(["spikes", "malformed", "skew"])), 3)


def test_normal_payloads_decode_cleanly() -> None:
    out = RowBuffer()
    msgs = [m for m in _stream(_sim(), 2) if m.kind == "telemetry"]
    for k, m in enumerate(msgs):
        assert DECODER.decode(m.topic, m.payload, m.ts_ns, out, k) is None, m
    assert not out.notes
    assert len(out) == sum(len(json.loads(m.payload)["values"]) for m in msgs)


def test_malformed_fault_payloads_are_rejected_by_the_decoder() -> None:
    msgs = [m for m in _stream(_sim(faults={"malformed": 1.0}), 1) if m.kind == "telemetry"]
    bad = [m for m in msgs if m.payload in MALFORMED]
    assert len(bad) > len(msgs) // 4
    assert {m.payload for m in bad} == set(MALFORMED)
    for k, m in enumerate(bad):
        assert DECODER.decode(m.topic, m.payload, m.ts_ns, RowBuffer(), k) is not None, m


def _stage(levels: list[float], p: dict[str, float]) -> list[int]:
    """Stages visited (0 Normal .. 3 Awas), entered above a threshold, left below it minus
    the hysteresis; consecutive repeats collapsed."""
    th = [p["waspada_cm"], p["siaga_cm"], p["awas_cm"]]
    stage, seen = 0, [0]
    for v in levels:
        while stage < 3 and v >= th[stage]:
            stage += 1
        while stage > 0 and v < th[stage - 1] - p["hysteresis_cm"]:
            stage -= 1
        if stage != seen[-1]:
            seen.append(stage)
    return seen


def test_flood_drives_every_gauge_through_every_stage_in_order() -> None:
    levels: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for m in _stream(_sim("flood"), 14):
        if m.kind == "telemetry" and m.device.startswith("wl-"):
            levels[m.device].append((m.ts_ns, json.loads(m.payload)["values"]["level_cm"]))
    for d in (d for d in REGISTRY.devices if d.kind == "river_gauge"):
        series = [v for _, v in sorted(levels[d.id])]
        stages = _stage(series, dict(d.params))
        assert stages[:4] == [0, 1, 2, 3], (d.id, stages)
        gaps = np.diff([t for t, _ in sorted(levels[d.id])]) / 1e9
        assert gaps.min() <= 30.0  # flood mode: faster reports above Waspada


def test_rain_upstream_raises_the_river_downstream_with_a_lag() -> None:
    world = Simulator(REGISTRY, scenario_name="haze", seed=1, start_s=T0, rivers=RIVERS,
                      tick_s=10.0).world  # haze: no storms, only what we pour in
    ids = [d.id for d in REGISTRY.devices]
    head, down = (int(world.gauge_of[ids.index(g)]) for g in RIVERS["brantas"][:2])
    world.store[head] = 3.0  # a downpour over Kesamben, nowhere else
    lag = int(world.lag[down])  # 9 km at 1.5 m/s: 100 minutes = 600 ticks
    assert lag == 600
    seen = []
    for _ in range(lag + 60):
        world.advance()
        seen.append(world.flood[down])
    assert max(seen[:lag - 1]) == 0.0
    assert seen[lag + 30] > 0.3


def test_normal_day_has_diurnal_temperature_and_rush_hours() -> None:
    temp: dict[int, list[float]] = defaultdict(list)
    cars: dict[int, list[float]] = defaultdict(list)
    for m in _stream(_sim(), 24):
        if m.kind != "telemetry":
            continue
        hour = int(((m.ts_ns / 1e9 + 7 * 3600) % 86400) // 3600)
        values = json.loads(m.payload)["values"]
        if m.device.startswith("ws-"):
            temp[hour].append(values["temperature_c"])
        if m.device.startswith("tc-"):
            cars[hour].append(values["vehicles"])
    t = {h: np.mean(v) for h, v in temp.items()}
    c = {h: np.mean(v) for h, v in cars.items()}
    assert t[14] > t[4] + 6
    assert c[7] > 3 * c[2]
    assert c[16] > 3 * c[2]


def test_outage_takes_districts_offline_and_back() -> None:
    msgs = _stream(_sim("outage"), 4)
    off = {m.device for m in msgs if m.kind == "offline"}
    back = [m for m in msgs if m.kind == "online" and m.device in off]
    sites = {d.site for d in REGISTRY.devices if d.id in off}
    assert len(sites) == 2
    assert off == {d.id for d in REGISTRY.devices if d.site in sites}
    assert {m.device for m in back} == off
    silent = [m for m in msgs if m.kind == "telemetry" and m.device in off
              and T0 + 3600 + 10 < m.ts_ns / 1e9 < T0 + 3 * 3600 - 10]  # one tick of slack
    assert silent == []


@pytest.mark.parametrize(("specs", "message"), [
    pytest.param(["melted"], "unknown fault 'melted'", id="unknown"),
    pytest.param(["stuck=2"], "within", id="fraction"),
    pytest.param(["stuck=x"], "not a fraction", id="not-a-number"),
])
def test_bad_fault_specs(specs: list[str], message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        parse_faults(specs)


def test_ten_thousand_devices_flat_out() -> None:
    big, rivers = grow(REGISTRY, RIVERS, 10_000, seed=1)
    sim = Simulator(big, seed=1, start_s=T0, rivers=rivers)
    lines: list[str] = []
    counts = run(sim, None, flat_out=True, duration_s=600, report=lines.append, every_s=0)
    assert counts["online"] == 10_000
    assert counts["telemetry"] > 10_000
    assert "messages" in lines[-1]
    assert "/s" in lines[-1]
