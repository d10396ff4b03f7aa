"""The crossings of `pantau.bench.alert_latency`: river gauges crossing Siaga and falling back
over MQTT, and what Alertmanager holds (``GET /api/v2/alerts``) and the webhook receives,
matched to each crossing by (device, the reading's time in ms: the annotation ``observed_at``;
``startsAt`` is when Pantau raised it). Event loop only."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from aiohttp import web

from devices import topics
from devices.registry import Device
from pantau.devstack import free_port

RULE, STAGE = "FloodStage", "Siaga"
POLL_S = 0.02  # resolution of "accepted" when a re-send moved updatedAt before a poll
WAIT_S = 60.0  # a notification later than this counts as missing


@dataclass(slots=True)
class Sample:
    """One crossing: wall-clock times (s) of each step, NaN while not seen."""

    device: str
    published: float
    accepted: float = math.inf  # earliest updatedAt seen
    notified: float = math.nan
    fell: float = math.nan
    resolved: float = math.nan
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def complete(self) -> bool:
        return math.isfinite(self.accepted + self.notified + self.resolved)


def epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (any number of fraction digits)."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return base + (float(f"0.{frac}") if frac else 0.0)


class Run:
    """The crossings in flight; what Alertmanager holds and what the webhook receives is
    matched to them by (device, the crossing reading's time in ms: ``observed_at``)."""

    def __init__(self, client: mqtt.Client, prefix: str, samples: int, seed: int) -> None:
        self.client, self.prefix, self.left = client, prefix, samples
        self.by_key: dict[tuple[str, int], Sample] = {}
        self.samples: list[Sample] = []
        self.rng = random.Random(seed)

    def _sample(self, alert: dict[str, Any]) -> Sample | None:
        lb = alert.get("labels", {})
        if lb.get("alertname") != RULE or lb.get("stage") != STAGE:
            return None
        seen = alert.get("annotations", {}).get("observed_at")
        return self.by_key.get((lb.get("device", ""), round(epoch(seen) * 1000))) if seen \
            else None

    async def hook(self, request: web.Request) -> web.Response:
        now, body = time.time(), await request.json()
        for a in body.get("alerts", []):
            step = "notified" if a["status"] == "firing" else "resolved"
            if (s := self._sample(a)) is not None and math.isnan(getattr(s, step)):
                setattr(s, step, now)
                s.changed.set()
        return web.json_response({})

    async def poll(self, http: aiohttp.ClientSession, am_url: str) -> None:
        query = [("filter", f'alertname="{RULE}"'), ("filter", f'stage="{STAGE}"')]
        while True:
            async with http.get(f"{am_url}/api/v2/alerts", params=query) as r:
                for a in await r.json():
                    if (s := self._sample(a)) is not None:
                        s.accepted = min(s.accepted, epoch(a["updatedAt"]))
                        s.changed.set()
            await asyncio.sleep(POLL_S)

    def _publish(self, device: Device, level: float) -> tuple[float, int]:
        now = time.time()
        ms = round(now * 1000)
        body = json.dumps({"ts": ms, "values": {"level_cm": level}})
        self.client.publish(topics.device_topics(self.prefix, device.site, device.id)[0],
                            body, qos=1)
        return now, ms

    async def gauge(self, device: Device) -> None:
        """Cross Siaga, wait for the notice, fall back, wait for the resolve; again."""
        p = device.params
        high, base = (p["siaga_cm"] + p["awas_cm"]) / 2, p.get("base_level_cm", 0.0)
        await asyncio.sleep(self.rng.uniform(0, 1))  # the gauges out of step
        while self.left > 0:
            self.left -= 1
            await asyncio.sleep(0.002)  # a new millisecond: a new reading time
            now, ms = self._publish(device, high)
            s = self.by_key[(device.id, ms)] = Sample(device.id, now)
            self.samples.append(s)
            await _until(s, lambda x: math.isfinite(x.accepted + x.notified))
            await asyncio.sleep(0.002)
            s.fell = self._publish(device, base)[0]
            await _until(s, lambda x: not math.isnan(x.resolved))


async def _until(s: Sample, done: Callable[[Sample], bool]) -> None:
    """Until ``done(s)``, or `WAIT_S` (the sample then stays incomplete)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(WAIT_S):
            while not done(s):
                await s.changed.wait()
                s.changed.clear()


@contextlib.asynccontextmanager
async def receiver(run: Run) -> AsyncIterator[str]:
    """The webhook receiver on a free loopback port; yields its base URL."""
    app = web.Application()
    app.router.add_post("/hook/{name}", run.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()
