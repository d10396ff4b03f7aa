"""Pantau -> Debian's Alertmanager (generated configuration) -> a real webhook receiver: stages
in order, one notification per river and stage, resolves heard; acknowledgement silences and
ends escalation yet the resolve is heard; escalation without it; an Alertmanager outage."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from core.metrics import DELAY_BUCKETS
from tests.alerts.receivers import alerts_of, dump, until
from tests.alerts.stack import Spawn, alert_stack, firing_groups

PUTIH = {"wl-putih-gandusari": (150, 220, 300), "wl-putih-wlingi": (180, 260, 340)}


def at(stage: int) -> dict[str, float]:
    return {d: levels[stage] + 20 for d, levels in PUTIH.items()}


async def test_stages_in_order_grouped_per_river_and_stage_then_resolved(
        tmp_path: Path, spawn: Spawn) -> None:
    async with alert_stack(tmp_path, spawn) as st:
        bpbd = lambda: st.rx.got.by("bpbd")  # noqa: E731
        for stage, name in enumerate(("Waspada", "Siaga", "Awas")):
            st.feed(at(stage))
            await until(lambda n=name: (n, 2) in firing_groups(bpbd()), what=name)
        st.feed({d: 100.0 for d in PUTIH})
        await until(lambda: sum(p["status"] == "resolved" for p in bpbd()
                                if p["groupLabels"]["alertname"] == "FloodStage") == 3,
                    what="three resolves")
        assert firing_groups(bpbd()) == [("Waspada", 2), ("Siaga", 2), ("Awas", 2)], \
            dump(bpbd())
        assert {tuple(sorted(p["groupLabels"].items())) for p in bpbd()
                if p["groupLabels"]["alertname"] == "FloodStage"} == {
            (("alertname", "FloodStage"), ("river", "putih"), ("stage", s))
            for s in ("Waspada", "Siaga", "Awas")}
        assert not st.rx.got.by("bpbd-supervisor")
        # Raised -> accepted by the replica, once per firing alert (2 devices x 3 stages),
        # and the Watchdog, however many rounds re-sent them.
        accepted = st.metrics.histogram("pantau_alert_delivery_seconds", DELAY_BUCKETS,
                                        replica=st.am.url)
        watchdog = sum(a.labels["alertname"] == "Watchdog"
                       for a in st.service.book.alerts.values())
        assert accepted.count == 6 + watchdog, accepted.count
        assert 0 < accepted.sum / accepted.count < 30
        history = st.service.book.history({"alertname": {"FloodStage"}}, 0, 100)
        assert [e.state for e in reversed(history)][:2] == ["firing", "firing"]


async def test_acknowledged_alert_is_silenced_not_escalated_and_its_resolve_heard(
        tmp_path: Path, spawn: Spawn) -> None:
    async with alert_stack(tmp_path, spawn, repeat_s=2, escalate_critical_s=3.0) as st:
        st.feed({"wl-putih-gandusari": 320.0})
        await until(lambda: ("Awas", 1) in firing_groups(st.rx.got.by("bpbd")), what="Awas")
        aid = st.alert(device="wl-putih-gandusari", stage="Awas")
        async with TestServer(st.service.api()) as server, aiohttp.ClientSession() as http:
            async with http.post(server.make_url(f"/{aid}/ack"),
                                 json={"who": "Budi (BPBD)", "comment": "tim ke lokasi"}) as r:
                assert r.status == 200, await r.text()
            async with http.post(server.make_url(f"/{aid}/ack"), json={"who": "x"}) as r:
                assert r.status == 409
        await until(lambda: [s for s in st.am.silences() if s["status"]["state"] == "active"
                             and s["createdBy"] == "Budi (BPBD)"], what="a silence")
        before = len(st.rx.got.by("bpbd"))
        await asyncio.sleep(5)  # repeat_interval 2 s, escalation after 3 s: neither happens
        assert len(st.rx.got.by("bpbd")) == before, dump(st.rx.got.by("bpbd"))
        assert not st.rx.got.by("bpbd-supervisor")
        st.feed({"wl-putih-gandusari": 100.0})
        await until(lambda: any(p["status"] == "resolved" for p in st.rx.got.by("bpbd")),
                    what="the resolve")
        assert not [s for s in st.am.silences() if s["status"]["state"] == "active"]
        events = {e.state: e for e in st.service.book.history({"id": {aid}}, 0, 10)}
        assert {"firing", "acknowledged", "resolved"} <= set(events)
        assert events["acknowledged"].who == "Budi (BPBD)"


async def test_unacknowledged_alert_escalates_to_the_next_tier(
        tmp_path: Path, spawn: Spawn) -> None:
    async with alert_stack(tmp_path, spawn, escalate_critical_s=2.0) as st:
        st.feed({"wl-putih-gandusari": 320.0})
        sup = await until(lambda: st.rx.got.by("bpbd-supervisor"), what="escalation")
        assert [a["labels"]["tier"] for a in sup[0]["alerts"]] == ["2"]
        assert sup[0]["alerts"][0]["labels"]["stage"] == "Awas"
        aid = st.alert(device="wl-putih-gandusari", stage="Awas")
        assert st.service.book.alerts[aid].tier == 2


async def test_alertmanager_down_then_everything_delivered(
        tmp_path: Path, spawn: Spawn) -> None:
    outage = 180.0 if os.environ.get("PANTAU_SLOW") else 4.0
    async with alert_stack(tmp_path, spawn) as st:
        st.feed({"wl-putih-gandusari": 170.0})
        await until(lambda: firing_groups(st.rx.got.by("bpbd")), what="Waspada")
        # Down only once it knows the Waspada notification went out (see Stack.answered).
        await until(st.answered, what="Alertmanager's record of the Waspada notification")
        await asyncio.to_thread(st.am.stop)  # the receivers keep answering meanwhile
        st.feed({"wl-putih-gandusari": 100.0, "wl-putih-wlingi": 280.0})  # resolve + Siaga
        await asyncio.sleep(outage)
        await asyncio.to_thread(st.am.start)
        got = lambda: st.rx.got.by("bpbd")  # noqa: E731
        # The resolve is heard by the alert's own status: the Waspada group's notification
        # may still carry wlingi's Waspada as firing (so the notification's status is
        # "firing"), should Alertmanager flush the group before its inhibitor saw the Siaga
        # of the same device arrive in the same post.
        waspada_resolved = ("resolved", "wl-putih-gandusari", "Waspada")
        await until(lambda: ("Siaga", 1) in firing_groups(got()) and waspada_resolved in [
                        (s, labels["device"], labels["stage"]) for s, labels in alerts_of(got())],
                    within=90,
                    what="the Siaga firing and the Waspada resolve after the outage",
                    explain=lambda: st.explain("bpbd"))
