"""One simulator replays the past flat out and then goes on live (``pantau simulate
--backfill``): the same world on both sides of the switch, so no river level jumps (two
processes, a replay and a fresh live one, put every river back at its dry-season level)."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest

from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Message, Simulator
from devices.simulator.publish import catch_up, run
from pantau.cli import main

PATH = default_registry_path()
REGISTRY = load_registry(PATH)
RIVERS = load_rivers(PATH, REGISTRY)
NOW = 1_764_306_000.0  # 2025-11-28 12:00 WIB
H = 3600.0


def levels(messages: list[Message]) -> dict[str, list[tuple[float, float]]]:
    """Gauge -> [(ts s, level_cm)] in time order."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in messages:
        if m.kind == "telemetry" and m.device.startswith("wl-"):
            doc = json.loads(m.payload)
            out[m.device].append((doc["ts"] / 1000, doc["values"]["level_cm"]))
    return {k: sorted(v) for k, v in out.items()}


def test_the_replay_goes_on_live_with_the_same_rivers() -> None:
    # The flood scenario: two hours in, every river is well above its dry-season level.
    sim = Simulator(REGISTRY, scenario_name="flood", seed=1, start_s=NOW - 2 * H,
                    rivers=RIVERS, tick_s=10.0)
    wall = [NOW]
    replayed: list[Message] = []

    def slow_publish(m: Message) -> None:  # the replay takes wall time: 20 ms a message
        replayed.append(m)
        wall[0] += 0.02

    passes = catch_up(sim, slow_publish, wall=lambda: wall[0], report=lambda _: None)
    switch = sim.now_s
    assert passes >= 2 and 0 <= wall[0] - switch < sim.tick_s  # caught up with the wall
    clock = [0.0]
    live: list[Message] = []
    run(sim, live.append, speed=1.0, duration_s=600, clock=lambda: clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s), report=lambda _: None)
    assert sim.now_s == pytest.approx(switch + 600, abs=sim.tick_s)

    before, after = levels(replayed), levels(live)
    fresh = levels(Simulator(REGISTRY, scenario_name="flood", seed=1, start_s=switch,
                             rivers=RIVERS, tick_s=10.0).advance(switch + 600))
    assert set(before) == set(after) == {d.id for d in REGISTRY.devices if d.metric("level_cm")}
    jumps = []
    for gauge, past in before.items():
        (t0, last), (t1, first) = past[-1], after[gauge][0]
        assert t0 < t1 <= t0 + 61, gauge  # no gap, no overlap: the next report, on time
        assert abs(first - last) < 15, (gauge, last, first)  # a minute of river and noise
        jumps.append(abs(fresh[gauge][0][1] - last))
    assert max(jumps) > 50  # what a fresh world would have published instead


def test_cli_backfill_then_live(capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    assert main(["simulate", "--dry-run", "--backfill", "0.25", "--duration", "30",
                 "--speed", "30"]) == 0
    ts: dict[str, list[float]] = defaultdict(list)
    for line in capsys.readouterr().out.splitlines():
        topic, _, payload = line.partition(" ")
        if topic.endswith("/telemetry") and payload.startswith("{"):
            ts[topic.split("/")[2]].append(json.loads(payload)["ts"] / 1000)
    first = min(t[0] for t in ts.values())
    last = max(t[-1] for t in ts.values())
    start = int(now) - 0.25 * H  # the backfill starts on a whole second
    assert start <= first < start + 60  # from the backfill's start
    assert time.time() - 5 < last <= time.time() + 31  # to the live end
    for device in ("wl-brantas-kanigoro", "ws-kanigoro"):  # one report a minute throughout
        gaps = [b - a for a, b in zip(ts[device], ts[device][1:], strict=False)]
        assert gaps and max(gaps) <= 61, device
