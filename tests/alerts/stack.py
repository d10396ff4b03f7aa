"""An alert stack for one test: real receivers, Debian's Alertmanager with the generated
configuration (short group timings), and an `AlertService` fed with stored batches made by
the real processor chain."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

from alerts.amconfig import Channels, render
from alerts.service import AlertService
from alerts.settings import AlertSettings
from core.metrics import Metrics
from pantau.devstack.alertmanager import Alertmanager
from processors import Chain
from tests.alerts.helpers import S, chain, rules, stored
from tests.alerts.receivers import Receivers, dump

TEMPLATE = (Path(__file__).parents[2] / "alerts" / "data" / "pantau.tmpl").read_text()
Spawn = Callable[[Alertmanager], Alertmanager]


@dataclass
class Stack:
    rx: Receivers
    ams: list[Alertmanager]
    service: AlertService
    chain: Chain
    metrics: Metrics  # the service's
    t: int  # device clock of the next readings (ns)

    def feed(self, levels: dict[str, float], minutes: int = 10) -> None:
        """Each gauge reports its level every minute for ``minutes`` (device time moves on)."""
        ts = (self.t + np.arange(minutes) * 60 * S).tolist()
        for device, level in levels.items():
            self.service.on_stored(stored(self.chain, device, "level_cm", ts,
                                          [level] * minutes))
        self.t += minutes * 60 * S

    @property
    def am(self) -> Alertmanager:
        return self.ams[0]

    async def answered(self) -> bool:
        """Whether the Alertmanagers have seen the answer to every notification the receivers
        got. A receiver records a notification when it arrives, but Alertmanager writes it
        into its notification log only once the answer came back; one stopped before that
        never learns it was sent, and after its restart it keeps a resolve of that group to
        itself (a group with only resolved alerts is sent only after a recorded firing)."""
        done = 0.0
        async with aiohttp.ClientSession() as http:
            for am in self.ams:
                async with http.get(f"{am.url}/metrics") as r:
                    text = await r.text()
                done += sum(float(line.split()[-1]) * (-1 if "_failed_" in line else 1)
                            for line in text.splitlines() if line.startswith((
                                "alertmanager_notification_requests_total{",
                                "alertmanager_notification_requests_failed_total{")))
        return done >= len(self.rx.got.hooks)

    def explain(self, receiver: str) -> str:
        """What ``receiver`` got, what the Alertmanagers hold and what Pantau has (for a
        failure message)."""
        held = [[(a["status"]["state"], a["labels"].get("device"), a["labels"].get("stage"),
                  a["startsAt"], a["endsAt"]) for a in am.alerts()] for am in self.ams]
        return (f"{receiver} received: {dump(self.rx.got.by(receiver))}\n"
                f"the Alertmanagers hold: {held}\nPantau has: "
                f"{[(a.state, a.labels, a.sent) for a in self.service.book.alerts.values()]}")

    def alert(self, **labels: str) -> str:
        return next(a.id for a in self.service.book.alerts.values()
                    if all(a.labels.get(k) == v for k, v in labels.items()))


@contextlib.asynccontextmanager
async def alert_stack(tmp_path: Path, spawn: Spawn, *, repeat_s: int = 3600, replicas: int = 1,
                      **settings: object) -> AsyncIterator[Stack]:
    rx = Receivers()
    async with rx.serve():
        channels = Channels(webhook=f"{rx.url}/hook/{{receiver}}",
                            deadman=f"{rx.url}/hook/deadman", group_wait_s=1,
                            group_interval_s=1, repeat_interval_s=repeat_s)
        ams = [spawn(Alertmanager(tmp_path / f"am{i}", config=render(rules(), channels),
                                  files={"pantau.tmpl": TEMPLATE})) for i in range(replicas)]
        opts: dict[str, object] = {"alertmanager_urls": tuple(a.url for a in ams),
                                   "resend_s": 1.0,
                                   "retry_max_s": 1.0, "sweep_s": 0.5,
                                   "escalate_critical_s": 0.0, "escalate_high_s": 0.0}
        opts.update(settings)
        service = AlertService(AlertSettings(**opts),  # type: ignore[arg-type]
                               (ch := chain()).table, state_dir=tmp_path / "state",
                               metrics=(metrics := Metrics()))
        service.open()
        task = asyncio.create_task(service.run())
        try:
            yield Stack(rx, ams, service, ch, metrics, time.time_ns() - 6 * 3600 * S)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            service.close()


def firing_groups(payloads: Sequence[dict[str, object]]) -> list[tuple[str, int]]:
    """(stage, number of firing alerts) of each firing FloodStage notification, in arrival
    order."""
    return [(p["groupLabels"]["stage"], len(p["alerts"]))  # type: ignore[index,arg-type]
            for p in payloads if p["status"] == "firing"
            and p["groupLabels"]["alertname"] == "FloodStage"]  # type: ignore[index]
