"""The Alertmanager client and the generated configuration against Debian's Alertmanager 0.25,
delivering to real receivers (webhook, Telegram Bot API stand-in, SMTP)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.alertmanager import AlertmanagerClient, NotifyError, rfc3339
from alerts.amconfig import Channels, render
from alerts.rules_yaml import default_rules_path, load_rules
from pantau.devstack import free_port
from pantau.devstack.alertmanager import Alertmanager
from tests.alerts.receivers import Receivers, until

S = 1_000_000_000
TEMPLATE = (Path(__file__).parents[2] / "alerts" / "data" / "pantau.tmpl").read_text()


def alert(name: str, **labels: str) -> dict[str, object]:
    now = time.time_ns()
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": "uji"},
            "startsAt": rfc3339(now), "endsAt": rfc3339(now + 300 * S)}


async def test_notify_silence_extend_expire(alertmanager: Alertmanager) -> None:
    async with AlertmanagerClient(alertmanager.url) as am:
        await am.notify([alert("ClientTest", device="d1")])
        assert any(a["labels"].get("alertname") == "ClientTest" for a in alertmanager.alerts())
        now = time.time_ns()
        sid = await am.silence({"alertname": "ClientTest", "device": "d1"}, starts_ns=now,
                               ends_ns=now + 60 * S, created_by="budi", comment="on it")
        again = await am.silence({"alertname": "ClientTest", "device": "d1"}, starts_ns=now,
                                 ends_ns=now + 120 * S, created_by="budi", comment="on it",
                                 silence_id=sid)
        states = {s["id"]: s["status"]["state"] for s in alertmanager.silences()}
        assert states[again] == "active"
        await am.expire(again)
        await am.expire(again)  # already expired: fine
        assert {s["id"]: s["status"]["state"] for s in alertmanager.silences()}[again] \
            == "expired"
        with pytest.raises(NotifyError) as refused:
            await am.notify([{"labels": {}}])
        assert not refused.value.retryable and refused.value.status == 400


async def test_an_unreachable_replica_is_retryable() -> None:
    async with AlertmanagerClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as am:
        with pytest.raises(NotifyError) as e:
            await am.notify([alert("X")])
    assert e.value.retryable


async def test_generated_config_delivers_in_bahasa_to_webhook_telegram_and_mail(
        tmp_path: Path, spawn: Callable[[Alertmanager], Alertmanager]) -> None:
    rx = Receivers()
    async with rx.serve(), rx.smtp() as smtp_port:
        channels = Channels(
            webhook=f"{rx.url}/hook/team", deadman=f"{rx.url}/hook/deadman",
            emails={"bpbd": "siaga@bpbd.example"}, telegram_chats={"bpbd": -1001},
            telegram_api_url=rx.url, telegram_token="123:uji",
            smtp_smarthost=f"127.0.0.1:{smtp_port}", smtp_require_tls=False,
            group_wait_s=1, group_interval_s=1)
        am = spawn(Alertmanager(tmp_path, config=render(load_rules(default_rules_path()),
                                                        channels),
                                files={"pantau.tmpl": TEMPLATE}))
        async with AlertmanagerClient(am.url) as client:
            flood = alert("FloodStage", severity="high", team="bpbd", device="wl-1",
                          river="brantas", stage="Siaga")
            flood["annotations"] = {"summary": "Sungai brantas: Siaga, tinggi air 560 cm",
                                    "summary_en": "River brantas: Siaga", "value": "2",
                                    "ack_url": "http://pantau.example/ack/t"}
            await client.notify([flood])
        await until(lambda: rx.got.telegram and rx.got.mails and rx.got.by("team"),
                    what="telegram, mail and webhook")
    text = rx.got.telegram[0]["text"]
    assert "PERINGATAN" in text and "tinggi air 560 cm" in text and "/ack/t" in text
    assert rx.got.telegram[0]["token"] == "123:uji"
    mail = rx.got.mails[0]
    assert "FloodStage sungai brantas Siaga" in mail["Subject"]
    assert rx.got.by("team")[0]["groupLabels"] == {"alertname": "FloodStage",
                                                   "river": "brantas", "stage": "Siaga"}


async def test_a_fridge_heat_alarm_inhibits_its_own_warm_warning_only(
        tmp_path: Path, spawn: Callable[[Alertmanager], Alertmanager]) -> None:
    rx = Receivers()
    async with rx.serve():
        am = spawn(Alertmanager(tmp_path, files={"pantau.tmpl": TEMPLATE}, config=render(
            load_rules(default_rules_path()), Channels(webhook=f"{rx.url}/hook/{{receiver}}",
                                                       group_wait_s=1, group_interval_s=1))))
        fridge = {"severity": "warning", "team": "dinkes", "kind": "cold_chain"}
        a = fridge | {"device": "cc-kanigoro", "site": "kanigoro"}
        b = fridge | {"device": "cc-wlingi", "site": "wlingi"}
        async with AlertmanagerClient(am.url) as client:
            await client.notify([alert("VaccineFridgeWarm", **a), alert("VaccineFridgeWarm", **b),
                                 alert("VaccineFridgeHeatAlarm", **a | {"severity": "high"})])

        def state(name: str, device: str) -> dict[str, object]:
            return next(x["status"] for x in am.alerts()
                        if x["labels"]["alertname"] == name and x["labels"]["device"] == device)

        await until(lambda: state("VaccineFridgeWarm", "cc-kanigoro")["state"] == "suppressed",
                    within=60, what="the heat alarm inhibiting the warm warning of its fridge")
        assert state("VaccineFridgeWarm", "cc-kanigoro")["inhibitedBy"]
        assert state("VaccineFridgeWarm", "cc-wlingi")["state"] == "active"
        assert state("VaccineFridgeHeatAlarm", "cc-kanigoro")["state"] == "active"
        got = await until(lambda: {(x["labels"]["alertname"], x["labels"]["device"])
                                   for p in rx.got.by("dinkes") for x in p["alerts"]}
                          >= {("VaccineFridgeHeatAlarm", "cc-kanigoro"),
                              ("VaccineFridgeWarm", "cc-wlingi")} and rx.got.by("dinkes"),
                          within=60, what="the heat alarm and the other fridge's warning")
        assert ("VaccineFridgeWarm", "cc-kanigoro") not in {
            (x["labels"]["alertname"], x["labels"]["device"]) for p in got for x in p["alerts"]}
