"""`kill -9` of `pantau run` while an alert fires: after the restart no second "firing"
notification, and the resolve that comes later is still heard (state from SQLite, the flood
latch from the snapshot or the warm-up)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.amconfig import Channels, render
from core.metrics import parse_text
from pantau.devstack import ADMIN_USER, InfluxDB1, Mosquitto
from pantau.devstack.alertmanager import Alertmanager
from tests.alerts.helpers import rules
from tests.alerts.receivers import Receivers, until
from tests.alerts.stack import TEMPLATE, Spawn, firing_groups
from tests.e2e.conftest import EnvFactory, PantauProcess, api_headers, scrape

pytestmark = pytest.mark.slow
GAUGE, SITE = "wl-putih-gandusari", "gandusari"   # awas 300, hysteresis 10


class Gauge:
    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.t = int(time.time()) - 3 * 3600

    def online(self) -> None:
        """Announce itself as a device does on connecting: ``online``, retained."""
        self.probe.client.publish(f"pantau/{SITE}/{GAUGE}/status", "online", qos=1,
                                  retain=True).wait_for_publish(5)

    def report(self, level: float, minutes: int) -> None:
        for _ in range(minutes):
            self.probe.publish(f"pantau/{SITE}/{GAUGE}/telemetry",
                               json.dumps({"ts": self.t, "values": {"level_cm": level}}))
            self.t += 60


async def alerts(env: dict[str, str]) -> list[dict[str, Any]]:
    url = f"http://{env['PANTAU_HTTP_LISTEN']}/api/alerts?device={GAUGE}&rule=FloodStage"
    try:
        async with aiohttp.ClientSession(headers=api_headers(env)) as http, \
                http.get(url) as r:
            return await r.json() if r.status == 200 else []
    except aiohttp.ClientError:
        return []


async def subscribed(env: dict[str, str]) -> bool:
    """Whether Pantau has received a message: its subscription exists on the broker. "Pantau
    is up" is logged before it connects to the broker, and a new session's subscription
    comes later still; what is published before it is not Pantau's to receive (the gauge's
    retained ``online`` is, once it subscribes)."""
    try:
        m = await scrape(env)
    except aiohttp.ClientError:
        return False
    return m.get("pantau_messages_received_total", 0) > 0


async def posted(am: Alertmanager) -> float:
    """How many firing alerts Alertmanager has taken in so far (each post counts each)."""
    async with aiohttp.ClientSession() as http, http.get(f"{am.url}/metrics") as r:
        m = parse_text(await r.text())
    return sum(v for k, v in m.items()
               if k.startswith('alertmanager_alerts_received_total{status="firing"'))


async def _more(am: Alertmanager, than: float) -> bool:
    return await posted(am) > than


async def test_kill9_while_firing(tmp_path: Path, spawn: Spawn, mosquitto: Mosquitto,
                                  influx: InfluxDB1, influx_db: str, pantau_env: EnvFactory,
                                  pantau_process: Callable[[dict[str, str]], PantauProcess],
                                  mqtt_client: Callable[..., Any]) -> None:
    rx = Receivers()
    async with rx.serve():
        am = spawn(Alertmanager(tmp_path / "am", files={"pantau.tmpl": TEMPLATE}, config=render(
            rules(), Channels(webhook=f"{rx.url}/hook/{{receiver}}", group_wait_s=1,
                              group_interval_s=1, repeat_interval_s=3600))))
        env = pantau_env(influx_db, PANTAU_ALERTS_ALERTMANAGER_URLS=am.url,
                         PANTAU_ALERTS_RESEND_S="5", PANTAU_ALERTS_SWEEP_S="0.5")
        gauge = Gauge(mqtt_client(ADMIN_USER))
        gauge.online()
        pantau = pantau_process(env)
        pantau.start()
        await until(lambda: subscribed(env), within=90, what="pantau subscribed")
        gauge.report(320.0, 10)
        bpbd = lambda: rx.got.by("bpbd")  # noqa: E731
        await until(lambda: ("Awas", 1) in firing_groups(bpbd()), within=60,
                    what="Awas notified")
        pantau.kill9()
        before = await posted(am)
        pantau.start()  # its session stayed on the broker: what follows waits there for it
        gauge.report(322.0, 5)
        awas = lambda a: a["labels"]["stage"] == "Awas"  # noqa: E731

        async def firing() -> list[dict[str, Any]]:
            return [a for a in await alerts(env) if awas(a) and a["state"] == "firing"]

        restored = await until(firing, within=90, what="the Awas alert firing after the restart")
        ack = f"http://{env['PANTAU_HTTP_LISTEN']}/api/alerts/{restored[0]['id']}/ack"
        async with aiohttp.ClientSession(headers=api_headers(env)) as http, \
                http.post(ack, json={"who": "viewer"}) as r:
            assert r.status == 403  # acknowledging needs the operator role
        # The restarted Pantau has sent its alerts; a second firing notification, were there
        # one, would leave at Alertmanager's next group interval (1 s): watch three of them.
        await until(lambda: _more(am, before), within=60, what="a post after the restart")
        await asyncio.sleep(3)
        assert firing_groups(bpbd()).count(("Awas", 1)) == 1, bpbd()
        gauge.report(250.0, 10)  # below awas - hysteresis: Awas resolves, Siaga stays
        await until(lambda: [p for p in bpbd() if p["status"] == "resolved"
                             and p["groupLabels"].get("stage") == "Awas"],
                    within=60, what="the Awas resolve")
        url = (f"http://{env['PANTAU_HTTP_LISTEN']}/api/alerts/history?device={GAUGE}"
               "&rule=FloodStage&severity=critical")
        async with aiohttp.ClientSession(headers=api_headers(env)) as http, http.get(url) as r:
            states = [e["state"] for e in await r.json()]
        pantau.stop()
    assert states == ["resolved", "firing"], states  # fired once, across the kill -9
