"""The simulator's flood scenario through `pantau run` (real Mosquitto, InfluxDB, Debian's
Alertmanager with the generated configuration, a webhook receiver): each river's stages are
notified in order, every notification is one river and one stage, and no group is notified
twice with the same alerts. The flood starts at 07:00 WIB yesterday (the afternoon storms
come at the same hours on every run). Bounded by default (the first 5 hours, when the Kelud
rivers reach Awas); ``PANTAU_SLOW=1`` plays 10 hours (every gauge reaches Awas)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from alerts.amconfig import Channels, render
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Simulator
from devices.simulator.publish import MuxPublisher, run
from pantau.devstack import ADMIN_USER, InfluxDB1, Mosquitto
from pantau.devstack.alertmanager import Alertmanager
from tests.alerts.helpers import rules
from tests.alerts.receivers import Receivers, until
from tests.alerts.stack import TEMPLATE, Spawn
from tests.e2e.conftest import EnvFactory, reached, run_pantau

STAGES = ("Waspada", "Siaga", "Awas")
pytestmark = pytest.mark.slow


async def pumped(pub: MuxPublisher) -> bool:
    """Every publish acknowledged by the broker? Pumps first: what paho still buffers is sent
    and PUBACKs are read only by `MuxPublisher.pump` (polling the count alone never moves it)."""
    await asyncio.to_thread(pub.pump, 0.1)
    return pub.unacked == 0


async def test_flood_scenario_end_to_end(tmp_path: Path, spawn: Spawn, mosquitto: Mosquitto,
                                         influx: InfluxDB1, influx_db: str,
                                         pantau_env: EnvFactory) -> None:
    hours = 10.0 if os.environ.get("PANTAU_SLOW") else 5.0
    rx = Receivers()
    async with rx.serve():
        am = spawn(Alertmanager(tmp_path / "am", files={"pantau.tmpl": TEMPLATE}, config=render(
            rules(), Channels(webhook=f"{rx.url}/hook/{{receiver}}", group_wait_s=1,
                              group_interval_s=1, repeat_interval_s=3600))))
        env = pantau_env(influx_db, PANTAU_ALERTS_ALERTMANAGER_URLS=am.url,
                         PANTAU_ALERTS_RESEND_S="1", PANTAU_ALERTS_SWEEP_S="0.5")
        path = default_registry_path()
        registry = load_registry(path)
        sim = Simulator(registry, scenario_name="flood", seed=0,
                        start_s=(time.time() // 86400 - 1) * 86400,  # 00:00 UTC yesterday
                        rivers=load_rivers(path, registry))
        pub = MuxPublisher(mosquitto.host, mosquitto.port, *mosquitto.admin)
        assert mosquitto.admin[0] == ADMIN_USER
        async with run_pantau(env):
            done = 0.0
            for step in [2 * 3600.0] + [1200.0] * int((hours - 2) * 3):
                await asyncio.to_thread(run, sim, pub.publish, pump=pub.pump, flat_out=True,
                                        duration_s=step, report=lambda _: None)
                await asyncio.to_thread(pub.pump, 1.0)
                done += step
                await until(lambda: pumped(pub), within=60, what="PUBACKs")
                sent = pub.acked  # every publish, now that the broker acknowledged them all
                await until(lambda n=sent: reached(env, "pantau_messages_acked_total", n),
                            within=120, what="Pantau has stored and acknowledged all of it")
                await asyncio.sleep(1.5)  # Alertmanager's group_wait, then the next 20 min
        pub.close()
    flood = [p for p in rx.got.by("bpbd") if p["groupLabels"]["alertname"] == "FloodStage"]
    assert flood, rx.got.hooks
    seen: dict[tuple[str, str], list[frozenset[str]]] = {}
    first: dict[str, list[str]] = {}
    for p in flood:
        group = p["groupLabels"]
        assert set(group) == {"alertname", "river", "stage"}
        assert all(a["labels"]["river"] == group["river"]
                   and a["labels"]["stage"] == group["stage"] for a in p["alerts"])
        if p["status"] != "firing":
            continue
        firing = frozenset(a["fingerprint"] for a in p["alerts"] if a["status"] == "firing")
        key = (group["river"], group["stage"])
        assert firing not in seen.get(key, []), f"{key} notified twice with the same alerts"
        seen.setdefault(key, []).append(firing)
        stages = first.setdefault(group["river"], [])
        if group["stage"] not in stages:
            stages.append(group["stage"])
    for river, order in first.items():
        assert order == sorted(order, key=STAGES.index), f"{river}: {order}"
    assert "Awas" in first["putih"] + first["bladak"], first
    assert "Siaga" in first["brantas"], first
