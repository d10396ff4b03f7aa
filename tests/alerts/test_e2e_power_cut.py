"""The simulator's power-cut scenario through `pantau run` (real Mosquitto, InfluxDB, Debian's
Alertmanager with the generated configuration, a webhook receiver): Dinkes hears, in this
order, that two Puskesmas lost mains power and their vaccine fridges are warm, that a third
fridge is freezing (critical), that the first two passed the 10-hour heat alarm, and then
every resolve; nobody else is paged.

Compressed time: the simulator publishes device-stamped readings flat out, 19.5 simulated
hours from 07:00 WIB yesterday in three stretches (each one stored and its notifications
sent before the next), so it runs in seconds. Bounded by default with the registry's vaccine
fridges alone; ``PANTAU_SLOW=1`` plays the whole regency (a dry day: nobody else paged)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest

from alerts.amconfig import Channels, render
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Simulator
from devices.simulator.coldchain import KIND
from devices.simulator.publish import MuxPublisher, run
from pantau.devstack import InfluxDB1, Mosquitto
from pantau.devstack.alertmanager import Alertmanager
from tests.alerts.helpers import one_kind, rules
from tests.alerts.receivers import Receivers, notices, until
from tests.alerts.stack import TEMPLATE, Spawn
from tests.alerts.test_e2e_flood import pumped
from tests.e2e.conftest import EnvFactory, reached, run_pantau

pytestmark = pytest.mark.slow
H = 3600.0
STRETCHES_H = (7.0, 15.5, 19.5)  # freezing and warm fire by 7 h, the heat alarm by 15.5 h
COLD_RULES = {"VaccineFridgePowerLost", "VaccineFridgeWarm", "VaccineFridgeHeatAlarm",
              "VaccineFridgeFreezing", "VaccineFridgeDoorOpen"}


async def test_power_cut_scenario_end_to_end(tmp_path: Path, spawn: Spawn, mosquitto: Mosquitto,
                                             influx: InfluxDB1, influx_db: str,
                                             pantau_env: EnvFactory) -> None:
    slow = bool(os.environ.get("PANTAU_SLOW"))
    path = default_registry_path() if slow else one_kind(tmp_path, KIND)
    registry = load_registry(path)
    sim = Simulator(registry, scenario_name="power_cut", seed=0,
                    start_s=(time.time() // 86400 - 1) * 86400,  # 07:00 WIB yesterday
                    rivers=load_rivers(path, registry))
    cold = sim.world.cold
    ids = [registry.devices[i].id for i in cold.devices.tolist()]
    cut = {ids[k] for k in np.flatnonzero(np.isfinite(cold.cut_from)).tolist()}
    frozen = {ids[k] for k in np.flatnonzero(np.isfinite(cold.stuck_from)).tolist()}
    assert len(cut) == 2 and len(frozen) == 1
    warm = {(rule, d) for d in cut for rule in ("VaccineFridgePowerLost", "VaccineFridgeWarm")}
    heat = {("VaccineFridgeHeatAlarm", d) for d in cut}
    freezing = {("VaccineFridgeFreezing", d) for d in frozen}
    expect = [{(*a, "firing") for a in warm | freezing},  # what each stretch must bring, at least
              {(*a, "firing") for a in heat} | {(*a, "resolved") for a in freezing},
              {(*a, "resolved") for a in warm | heat}]
    rx = Receivers()
    seen: list[set[tuple[str, str, str]]] = []

    def new() -> set[tuple[str, str, str]]:  # what arrived since the stretches before
        return notices(rx.got.by("dinkes")) - set().union(*seen)

    async with rx.serve():
        am = spawn(Alertmanager(tmp_path / "am", files={"pantau.tmpl": TEMPLATE}, config=render(
            rules(), Channels(webhook=f"{rx.url}/hook/{{receiver}}", group_wait_s=1,
                              group_interval_s=1, repeat_interval_s=3600))))
        env = pantau_env(influx_db, PANTAU_REGISTRY=str(path),
                         PANTAU_ALERTS_ALERTMANAGER_URLS=am.url,
                         PANTAU_ALERTS_RESEND_S="1", PANTAU_ALERTS_SWEEP_S="0.5")
        pub = MuxPublisher(mosquitto.host, mosquitto.port, *mosquitto.admin)
        async with run_pantau(env):
            done = 0.0
            for end in STRETCHES_H:
                await asyncio.to_thread(run, sim, pub.publish, pump=pub.pump, flat_out=True,
                                        duration_s=(end - done) * H, report=lambda _: None)
                done = end
                await until(lambda: pumped(pub), within=60, what="PUBACKs")
                await until(lambda n=pub.acked: reached(env, "pantau_messages_acked_total", n),
                            within=120, what="Pantau stored and acknowledged the stretch")
                await until(lambda: expect[len(seen)] <= new(), within=90,
                            what=f"the notifications of stretch {len(seen) + 1}")
                await asyncio.sleep(3.0)  # then a window for anything more (asserted below)
                seen.append(new())
        pub.close()
    firing = [{(name, dev) for name, dev, status in got if status == "firing"} for got in seen]
    resolved = [{(name, dev) for name, dev, status in got if status == "resolved"}
                for got in seen]
    assert firing[0] == warm | freezing, seen[0]
    assert firing[1] == heat, seen[1]
    assert resolved[1] == freezing, seen[1]
    assert resolved[2] == warm | firing[1], seen[2]
    assert not resolved[0] and not firing[2]
    severities = {a["labels"]["alertname"]: a["labels"]["severity"]
                  for p in rx.got.by("dinkes") for a in p["alerts"]}
    assert severities == {"VaccineFridgePowerLost": "warning", "VaccineFridgeWarm": "warning",
                          "VaccineFridgeHeatAlarm": "high", "VaccineFridgeFreezing": "critical"}
    others = {n for n, p in rx.got.hooks if n not in ("dinkes", "deadman", "tickets")}
    assert others == set(), others
    assert all(a["labels"]["alertname"] not in COLD_RULES
               for n, p in rx.got.hooks if n != "dinkes" for a in p["alerts"])
