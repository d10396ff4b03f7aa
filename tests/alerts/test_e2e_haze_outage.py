"""The simulator's haze and outage scenarios through `pantau run` (real Mosquitto, InfluxDB,
Debian's Alertmanager with the generated configuration, a webhook receiver), as
`test_e2e_flood` and `test_e2e_power_cut` do for theirs: published flat out (device-stamped
readings) in stretches, each stored and acknowledged, and its notifications sent, before the
next.

- Haze (the air-quality stations alone): ISPU needs 24-hour averages of 18 complete hours, so
  30 simulated hours (``PANTAU_SLOW=1``: 48) from 07:00 WIB two days ago; `AirQualityISPU`
  fires on the stations as the same readings make it fire in process (`tests.alerts.play`),
  DLH hears it, one notification per station and stage (the generated grouping), a lower
  stage raised with a higher one is muted by it (the generated inhibitions), and nobody else
  is paged.
- Outage (the whole regency): two districts go offline (the simulator publishes ``offline``
  on their devices' status topics, as their brokers' LWTs would) for 2 h from 1 h; the IT
  team hears `DeviceOffline` for exactly those devices, one notification per district, then
  every resolve once they are back; while they are offline their data-quality alerts are
  muted. The scenario cannot raise one then (a sensor is stuck after 3 h without change, and
  an offline device sends nothing), so the test posts a `SensorStuck` to Alertmanager for an
  offline device and one for a device that is online: the first is held by that device's
  `DeviceOffline` and paged once the device is back, the second paged at once.
  Compressed time needs one change to the shipped rules: an LWT carries no timestamp, so
  Pantau stamps a status change with its own clock and `DeviceOffline`'s ``for`` (10 min)
  runs on the wall clock; the two simulated hours offline last about a second here, so the
  test's copy of the rules waits `OFFLINE_FOR` instead (routing and inhibitions are
  generated from that same copy: they do not depend on ``for``). The status store's timeout
  (twice a device's interval, 2 min for the river gauges) runs on the wall clock too: the
  test is over well before.

The haze test found a race, fixed since: Pantau sent an alert's ``startsAt`` on the data's
clock (`Alert.fired_ns`). For replayed data further back than ``group_wait``, Alertmanager 0.25
flushes a new group at once instead of waiting (``aggrGroup.insert`` in its dispatch.go:
"Immediately trigger a flush if the wait duration for this alert is already over"), and a
lower stage posted together with the higher one that mutes it (Tidak Sehat with Sangat Tidak
Sehat: one reading makes both) was notified whenever the dispatcher got there before the
inhibitor had cached the higher one (about one run in ten to twenty). `startsAt` is now
Pantau's clock (`alerts.delivery`), the reading's time an annotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ruamel.yaml import YAML

from alerts.alertmanager import AlertmanagerClient, rfc3339
from alerts.amconfig import Channels, generate, render
from alerts.rules import Rule, RuleSet
from alerts.rules_yaml import default_rules_path, load_rules
from core.metrics import total
from devices import topics
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Message, Simulator
from devices.simulator.publish import MuxPublisher, run
from pantau.devstack import InfluxDB1, Mosquitto
from pantau.devstack.alertmanager import Alertmanager
from tests.alerts.helpers import one_kind, rules
from tests.alerts.play import play
from tests.alerts.receivers import Receivers, dump, notices, until
from tests.alerts.stack import TEMPLATE, Spawn
from tests.alerts.test_e2e_flood import pumped
from tests.e2e.conftest import EnvFactory, reached, run_pantau, scrape

pytestmark = pytest.mark.slow
H = 3600.0
S = 1_000_000_000
DAY = 86400.0
OFFLINE_FOR = "3s"  # DeviceOffline's `for` in the outage test (shipped: 10m, on the wall clock)
# Pages nobody: the dead-man's switch (the Watchdog) and maintenance tickets (severity info).
UNPAGED = ("deadman", "tickets")


def rule(rs: RuleSet, name: str) -> Rule:
    return next(r for r in rs.rules if r.name == name)


def route(config: dict[str, Any], team: str) -> dict[str, Any]:
    """The generated route of ``team``'s tier 1 (its receiver and ``group_by``)."""
    return next(r for r in config["route"]["routes"] if r["matchers"] == [f'team="{team}"'])


def channels(rx: Receivers) -> Channels:
    return Channels(webhook=f"{rx.url}/hook/{{receiver}}", group_wait_s=1, group_interval_s=1,
                    repeat_interval_s=3600)


def check_groups(payloads: list[dict[str, Any]], group_by: list[str]) -> None:
    """Every notification is one group of ``group_by`` (the labels its alerts have) and no
    group is notified twice with the same firing alerts."""
    seen: dict[tuple[tuple[str, str], ...], list[frozenset[str]]] = {}
    for p in payloads:
        group = p["groupLabels"]
        assert set(group) <= set(group_by), group
        for a in p["alerts"]:
            assert {k: a["labels"][k] for k in group_by if k in a["labels"]} == group, (group, a)
        if p["status"] != "firing":
            continue
        firing = frozenset(a["fingerprint"] for a in p["alerts"] if a["status"] == "firing")
        key = tuple(sorted(group.items()))
        assert firing not in seen.get(key, []), f"{group} notified twice with the same alerts"
        seen.setdefault(key, []).append(firing)


async def clear_status(pub: MuxPublisher, devices: list[tuple[str, str]]) -> None:
    """Remove the retained status of these (site, device) from the session's broker, so what
    an earlier test left there (an ``offline``) cannot reach this test's Pantau."""
    for site, device in devices:  # an empty retained message (kind: not telemetry) deletes
        pub.publish(Message(device, topics.device_topics("pantau", site, device)[1], b"",
                            "offline", 0))
    await until(lambda: pumped(pub), within=30, what="PUBACKs of the cleared statuses")


@contextlib.asynccontextmanager
async def live(tmp: Path, spawn: Spawn, rs: RuleSet, rx: Receivers, mosquitto: Mosquitto,
               pantau_env: EnvFactory, influx_db: str, devices: list[tuple[str, str]],
               **env: str) -> AsyncIterator[tuple[Alertmanager, dict[str, str], MuxPublisher]]:
    """Debian's Alertmanager with ``rs``'s generated configuration sending to ``rx``, a
    publisher for the session's broker (the retained statuses of ``devices`` cleared) and
    `pantau run` (``env`` added) delivering to that Alertmanager every second."""
    am = spawn(Alertmanager(tmp / "am", files={"pantau.tmpl": TEMPLATE},
                            config=render(rs, channels(rx))))
    settings = pantau_env(influx_db, PANTAU_ALERTS_ALERTMANAGER_URLS=am.url,
                          PANTAU_ALERTS_RESEND_S="1", PANTAU_ALERTS_SWEEP_S="0.5", **env)
    pub = MuxPublisher(mosquitto.host, mosquitto.port, *mosquitto.admin)
    try:
        await clear_status(pub, devices)
        async with run_pantau(settings):
            yield am, settings, pub
    finally:
        pub.close()


class Player:
    """Publishes the simulator's stretches and waits until Pantau stored and acknowledged
    each one (its ``pantau_messages_acked_total`` counts from what it had before the first)."""

    def __init__(self, sim: Simulator, pub: MuxPublisher, env: dict[str, str],
                 tap: Callable[[Message], None] = lambda _: None) -> None:
        self.sim, self.pub, self.env, self.tap = sim, pub, env, tap
        self.start = sim.now_s
        self.base = 0.0
        self.sent0 = pub.acked

    async def begin(self) -> None:
        await asyncio.sleep(0.5)  # anything retained it was handed on subscribing
        self.base = total(await scrape(self.env), "pantau_messages_acked_total")

    def _publish(self, m: Message) -> None:
        self.tap(m)
        self.pub.publish(m)

    async def to(self, hours: float) -> None:
        """Play on until ``hours`` after the start (simulated)."""
        await asyncio.to_thread(run, self.sim, self._publish, pump=self.pub.pump,
                                flat_out=True, duration_s=self.start + hours * H - self.sim.now_s,
                                report=lambda _: None)
        await until(lambda: pumped(self.pub), within=60, what="PUBACKs")
        n = self.base + self.pub.acked - self.sent0
        await until(lambda: reached(self.env, "pantau_messages_acked_total", n), within=120,
                    what="Pantau stored and acknowledged the stretch")


def mutes(config: dict[str, Any], name: str) -> dict[str, set[str]]:
    """Stage -> the stages of the same rule it mutes on the same device (the generated
    inhibitions)."""
    def parse(matchers: list[str]) -> list[tuple[str, ...]]:
        found = [re.fullmatch(r'(\w+)(=~?)"(.*)"', m) for m in matchers]
        assert all(found), matchers
        return [m.groups() for m in found if m]

    out: dict[str, set[str]] = {}
    for r in config["inhibit_rules"]:
        src, dst = parse(r["source_matchers"]), parse(r["target_matchers"])
        if ("alertname", "=", name) in src and ("alertname", "=", name) in dst:
            assert r["equal"] == ["device"], r
            (higher,) = [v for k, op, v in src if k == "stage" and op == "="]
            (lower,) = [v for k, op, v in dst if k == "stage" and op == "=~"]
            out.setdefault(higher, set()).update(lower.split("|"))
    return out


async def test_haze_scenario_end_to_end(tmp_path: Path, spawn: Spawn, mosquitto: Mosquitto,
                                        influx: InfluxDB1, influx_db: str,
                                        pantau_env: EnvFactory,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    stretches = (16.0, 30.0, 48.0) if os.environ.get("PANTAU_SLOW") else (16.0, 30.0)
    path = one_kind(tmp_path, "air_quality")
    registry = load_registry(path)
    stations = {d.id: d for d in registry.devices}
    start = (time.time() // DAY - 2) * DAY  # 07:00 WIB two days ago: the last reading is past
    sim = Simulator(registry, scenario_name="haze", seed=0, start_s=start,
                    rivers=load_rivers(path, registry))
    rs = rules()
    aqi = rule(rs, "AirQualityISPU")
    severity = {lv.label: lv.severity for lv in aqi.levels}
    rx = Receivers()
    config = generate(rs, channels(rx))
    team = route(config, aqi.team)
    receiver, group_by = team["receiver"], team["group_by"]
    muting = mutes(config, aqi.name)
    assert muting, config["inhibit_rules"]

    # What the rules make of the same readings in this process (`tests.alerts.play`): which
    # stages fire on which station, and when (device time).
    monkeypatch.setattr("tests.alerts.play.default_registry_path", lambda: path)
    monkeypatch.setattr("tests.alerts.helpers.default_registry_path", lambda: path)
    (tmp_path / "ref").mkdir()
    book = play(tmp_path / "ref", "haze", start, stretches[-1]).book
    assert not [e for e in book.history({"alertname": {aqi.name}}, 0, 10_000)
                if e.state != "firing"], "the haze lifts: the expectations below do not say so"
    fired = {(a.labels["device"], a.labels["stage"]): a.fired_ns for a in book.alerts.values()
             if a.labels["alertname"] == aqi.name and a.state == "firing"}
    assert {stations[d].kind for d, _ in fired} == {"air_quality"}
    assert len({d for d, _ in fired}) >= 3, fired
    expect: list[set[tuple[str, str, str]]] = []  # what DLH hears in each stretch
    held: set[tuple[str, str]] = set()  # (station, stage) firing, muted by a higher stage
    for end in stretches:
        now = {k for k, ns in fired.items() if ns <= (start + end * H) * S}
        held = {(d, low) for d, st in now for low in muting.get(st, ()) if (d, low) in now}
        told = {(d, st, "firing") for d, st in now - held} - set().union(set(), *expect)
        expect.append(told)
    assert not expect[0], "an index after 16 hours, with 18 complete hours needed?"

    got: list[set[tuple[str, str, str]]] = []

    def new() -> set[tuple[str, str, str]]:  # (station, stage, status) not heard before
        return {(a["labels"]["device"], a["labels"]["stage"], a["status"])
                for p in rx.got.by(receiver) for a in p["alerts"]} - set().union(set(), *got)

    async with rx.serve(), live(tmp_path, spawn, rs, rx, mosquitto, pantau_env, influx_db,
                                [(d.site, d.id) for d in registry.devices],
                                PANTAU_REGISTRY=str(path)) as (am, env, pub):
        player = Player(sim, pub, env)
        await player.begin()
        for end, told in zip(stretches, expect, strict=True):
            await player.to(end)
            await until(lambda t=told: t <= new(), within=60,
                        what=f"DLH's notifications by {end} h",
                        explain=lambda: dump(rx.got.by(receiver)))
            await asyncio.sleep(3.0)  # then a window for anything more (asserted below)
            got.append(new())
        # the lower stages Pantau raised are in Alertmanager, muted by the higher one
        held_am = {(a["labels"]["device"], a["labels"]["stage"]): a for a in am.alerts()
                   if a["labels"]["alertname"] == aqi.name}
        assert set(held_am) == set(fired), (set(held_am), set(fired))
        for (d, low), a in held_am.items():
            by = {held_am[d, st]["fingerprint"] for st, lows in muting.items()
                  if low in lows and (d, st) in held_am}
            if (d, low) in held:
                assert a["status"]["state"] == "suppressed", a
                assert set(a["status"]["inhibitedBy"]) <= by and a["status"]["inhibitedBy"]
            else:
                assert a["status"]["state"] == "active", a
    # No lower stage notified beside the higher one that mutes it (the race in the module
    # docstring): exactly what the reference predicts, stretch by stretch.
    assert got == expect, (got, expect)
    payloads = rx.got.by(receiver)
    check_groups(payloads, group_by)
    groups = Counter(tuple(sorted(p["groupLabels"].items())) for p in payloads
                     if p["status"] == "firing"
                     and not any((a["labels"]["device"], a["labels"]["stage"]) in held
                                 for a in p["alerts"]))
    assert set(groups.values()) == {1}, groups  # one notification per station and stage
    assert len(groups) == len(set().union(*expect)), groups
    for p in payloads:
        for a in p["alerts"]:
            labels = a["labels"]
            station = stations[labels["device"]]
            assert labels["alertname"] == aqi.name and labels["team"] == aqi.team
            assert labels["severity"] == severity[labels["stage"]], labels
            assert labels["kind"] == station.kind and labels["site"] == station.site, labels
    others = {n for n, _ in rx.got.hooks if n not in (receiver, *UNPAGED)}
    assert others == set(), others


async def test_outage_scenario_end_to_end(tmp_path: Path, spawn: Spawn, mosquitto: Mosquitto,
                                          influx: InfluxDB1, influx_db: str,
                                          pantau_env: EnvFactory) -> None:
    yaml = YAML(typ="safe")
    doc = yaml.load(default_rules_path().read_text())
    offline_rule = next(r for r in doc["rules"] if r["name"] == "DeviceOffline")
    offline_rule["for"] = OFFLINE_FOR
    rules_path = tmp_path / "rules.yaml"
    with rules_path.open("w") as f:
        yaml.dump(doc, f)
    rs = load_rules(rules_path)
    offline = rule(rs, "DeviceOffline")
    stuck = rule(rs, "SensorStuck")

    path = default_registry_path()
    registry = load_registry(path)
    devices = {d.id: d for d in registry.devices}
    start = (time.time() // DAY - 1) * DAY  # 07:00 WIB yesterday
    sim = Simulator(registry, scenario_name="outage", seed=0, start_s=start,
                    rivers=load_rivers(path, registry))
    ids = [d.id for d in registry.devices]
    hit = np.flatnonzero(np.isfinite(sim.off_from)).tolist()
    out = {ids[i] for i in hit}
    sites = {devices[d].site for d in out}
    assert len(sites) == 2 and out == {d for d in ids if devices[d].site in sites}, out
    off_h = {float((sim.off_from[i] - start) / H) for i in hit}
    back_h = {float((sim.off_until[i] - start) / H) for i in hit}
    assert len(off_h) == len(back_h) == 1
    (off_at,), (back_at,) = off_h, back_h
    tick_h = sim.tick_s / H

    said: dict[str, list[str]] = {}

    def tap(m: Message) -> None:
        if m.kind != "telemetry":
            said.setdefault(m.device, []).append(m.kind)

    rx = Receivers()
    config = generate(rs, channels(rx))
    team = route(config, offline.team)
    receiver, group_by = team["receiver"], team["group_by"]
    assert route(config, stuck.team)["receiver"] == receiver
    got: list[set[tuple[str, str, str]]] = []

    def new() -> set[tuple[str, str, str]]:
        return notices(rx.got.by(receiver)) - set().union(*got)

    firing = {("DeviceOffline", d, "firing") for d in out}
    resolved = {("DeviceOffline", d, "resolved") for d in out}
    async with rx.serve(), live(tmp_path, spawn, rs, rx, mosquitto, pantau_env, influx_db,
                                [(d.site, d.id) for d in registry.devices],
                                PANTAU_ALERTS_RULES=str(rules_path)) as (am, env, pub):
        player = Player(sim, pub, env, tap)
        await player.begin()
        # 1: until the districts are offline
        await player.to(off_at + tick_h)
        await until(lambda: firing <= new(), within=60, what="DeviceOffline notifications",
                    explain=lambda: dump(rx.got.by(receiver)))
        await asyncio.sleep(3.0)
        got.append(new())
        # mid-outage: a stuck sensor on an offline device is muted, one on a device
        # that is online is not
        muted = sorted(out)[0]
        heard = next(d for d in ids if d not in out and devices[d].kind
                     == devices[muted].kind)
        now_ns = time.time_ns()

        def stuck_alert(device: str) -> dict[str, Any]:
            d = devices[device]
            return {"labels": {"alertname": stuck.name, "severity": stuck.severity,
                               "team": stuck.team, "device": d.id, "site": d.site,
                               "kind": d.kind, "metric": d.metrics[0].name},
                    "annotations": {"summary": "uji"},
                    "startsAt": rfc3339(now_ns), "endsAt": rfc3339(now_ns + 600 * S)}

        async with AlertmanagerClient(am.url) as client:
            await client.notify([stuck_alert(muted), stuck_alert(heard)])

        def am_state(name: str, device: str) -> dict[str, Any]:
            return next((a for a in am.alerts() if a["labels"]["alertname"] == name
                         and a["labels"].get("device") == device),
                        {"status": {"state": "absent"}})

        await until(lambda: am_state(stuck.name, muted)["status"]["state"] == "suppressed",
                    within=30, what="the offline device's stuck sensor muted")
        assert am_state(stuck.name, muted)["status"]["inhibitedBy"] == [
            am_state(offline.name, muted)["fingerprint"]]
        assert am_state(stuck.name, heard)["status"]["state"] == "active"
        await until(lambda: (stuck.name, heard, "firing") in new(), within=30,
                    what="the online device's stuck sensor notified")
        await asyncio.sleep(3.0)
        got.append(new())
        # 2: until they are back and beyond
        await player.to(3.5)
        await until(lambda: resolved <= new(), within=60, what="the resolves",
                    explain=lambda: dump(rx.got.by(receiver)))
        await until(lambda: (stuck.name, muted, "firing") in new(), within=30,
                    what="the stuck sensor, no longer muted, notified")
        await asyncio.sleep(3.0)
        got.append(new())
    assert {d for d, kinds in said.items() if "offline" in kinds} == out, said
    assert all(kinds == ["online", "offline", "online"] for d, kinds in said.items()
               if d in out), said
    assert 0 < off_at < back_at < 3.5
    assert got[0] == firing, got[0]
    assert got[1] == {(stuck.name, heard, "firing")}, got[1]
    assert got[2] == resolved | {(stuck.name, muted, "firing")}, got[2]
    payloads = rx.got.by(receiver)
    check_groups(payloads, group_by)
    groups = {tuple(sorted(p["groupLabels"].items())) for p in payloads
              if p["groupLabels"]["alertname"] == offline.name}
    assert groups == {(("alertname", offline.name), ("site", s)) for s in sites}, groups
    assert all(a["labels"]["severity"] == offline.severity and a["labels"]["team"]
               == offline.team and a["labels"]["kind"] == devices[a["labels"]["device"]].kind
               and a["labels"]["site"] == devices[a["labels"]["device"]].site
               for p in payloads for a in p["alerts"])
    others = {n for n, _ in rx.got.hooks if n not in (receiver, *UNPAGED)}
    assert others == set(), others
