"""``pantau bench --alerts --latency``: from a river gauge's reading to Alertmanager and to the
on-call channel, end to end (a documented command, not a test).

Mosquitto and InfluxDB (`pantau.devstack`), Debian's Alertmanager with the configuration
generated from the shipped rules (``group_wait`` and ``group_interval`` lowered to
``--group-wait``), a local aiohttp webhook receiver, and ``pantau run`` as its own process with
the shipped settings but ``processors.flood_min_duration_s = 0`` (that duration is device time,
not delay). ``--gauges`` Blitar river gauges at once each publish a level between Siaga and
Awas stamped with the wall clock (the crossing), wait for its ``FloodStage`` Siaga notice,
publish their base level (the fall) and wait for the resolve; until ``--samples`` crossings.
Per crossing: publish -> Alertmanager accepted (the alert's ``updatedAt``, Alertmanager's clock
when a POST carried it, the earliest that ``GET /api/v2/alerts`` polled every 20 ms shows with
this crossing's ``startsAt``); publish -> firing notice at the webhook; fall -> resolve notice.
Prints p50/p90/p99/max with the sample count, the settings that govern them, and Pantau's
publish-to-stored delay (``pantau_ingest_delay_seconds``) for the breakdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import math
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import paho.mqtt.client as mqtt
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion
from ruamel.yaml import YAML

from alerts.amconfig import Channels, generate
from alerts.rules_yaml import default_rules_path, load_rules
from devices import topics
from devices.registry import Device, default_registry_path, load_registry
from pantau.bench import _metrics, _quantile, running_pantau
from pantau.config import load_settings
from pantau.devstack import InfluxDB1, Mosquitto, free_port, stack_users
from pantau.devstack.alertmanager import Alertmanager
from pantau.settings import Settings

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


@dataclass
class Report:
    samples: list[Sample]
    config: dict[str, str]
    stored: tuple[float, float] = (math.nan, math.nan)  # publish -> stored p50, p99 (s)

    @property
    def arrived(self) -> int:
        return sum(s.complete for s in self.samples)

    def lines(self) -> list[str]:
        def row(name: str, d: list[float]) -> str:
            if not d:
                return f"  {name:32s} no samples"
            q = np.percentile(np.asarray(d) * 1000, [50, 90, 99, 100])
            return (f"  {name:32s} p50 {q[0]:5.0f}  p90 {q[1]:5.0f}  p99 {q[2]:5.0f}  "
                    f"max {q[3]:5.0f} ms  (n={len(d)})")

        ok = [s for s in self.samples if s.complete]
        acc = [s.accepted - s.published for s in ok]
        p99 = float(np.percentile(acc, 99)) if acc else math.inf
        return [f"Pantau alert latency: {len(self.samples)} Siaga crossings, {self.arrived} "
                "notified and resolved end to end",
                *(f"  {k}: {v}" for k, v in self.config.items()),
                row("publish -> Alertmanager accepted", acc),
                row("publish -> webhook (firing)", [s.notified - s.published for s in ok]),
                row("fall -> webhook (resolved)", [s.resolved - s.fell for s in ok]),
                f"  publish -> stored in InfluxDB    p50 {self.stored[0] * 1000:5.0f}  p99 "
                f"{self.stored[1] * 1000:5.0f} ms  (Pantau's histogram, every reading)",
                f"  target p99 < 1000 ms to Alertmanager: {'met' if p99 < 1 else 'MISSED'}"]


def _epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (any number of fraction digits)."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return base + (float(f"0.{frac}") if frac else 0.0)


def am_config(hook: str, group_wait_s: float) -> str:
    """The shipped Alertmanager configuration, every notification also to ``hook``/<receiver>,
    with the root route's ``group_wait`` and ``group_interval`` (inherited) set short."""
    doc = generate(load_rules(default_rules_path()), Channels(
        webhook=f"{hook}/{{receiver}}", deadman=f"{hook}/deadman", repeat_interval_s=3600))
    wait = f"{round(group_wait_s * 1000)}ms"
    doc["route"] |= {"group_wait": wait, "group_interval": wait}
    out = io.StringIO()
    YAML().dump(doc, out)
    return out.getvalue()


class Run:
    """The crossings in flight; what Alertmanager holds and what the webhook receives is
    matched to them by (device, startsAt in ms)."""

    def __init__(self, client: mqtt.Client, prefix: str, samples: int, seed: int) -> None:
        self.client, self.prefix, self.left = client, prefix, samples
        self.by_key: dict[tuple[str, int], Sample] = {}
        self.samples: list[Sample] = []
        self.rng = random.Random(seed)

    def _sample(self, alert: dict[str, Any]) -> Sample | None:
        lb = alert.get("labels", {})
        if lb.get("alertname") != RULE or lb.get("stage") != STAGE:
            return None
        return self.by_key.get((lb.get("device", ""), round(_epoch(alert["startsAt"]) * 1000)))

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
                        s.accepted = min(s.accepted, _epoch(a["updatedAt"]))
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
            await asyncio.sleep(0.002)  # a new millisecond: a new startsAt
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
async def _thread_cm(cm: contextlib.AbstractContextManager[Any]) -> AsyncIterator[Any]:
    """A blocking context manager entered and left in a worker thread."""
    value = await asyncio.to_thread(cm.__enter__)
    try:
        yield value
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def _receiver(run: Run) -> AsyncIterator[str]:
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


def _config(s: Settings, group_wait_s: float, gauges: int) -> dict[str, str]:
    return {"Alertmanager": f"group_wait {group_wait_s:g} s, group_interval {group_wait_s:g} s "
                            "(lowered for the bench; shipped: 30 s, 5 min)",
            "Pantau": f"influx.flush_interval_s {s.influx.flush_interval_s:g} (the batch "
                      f"window), alerts.sweep_s {s.alerts.sweep_s:g}, alerts.resend_s "
                      f"{s.alerts.resend_s:g}, processors.flood_min_duration_s "
                      f"{s.processors.flood_min_duration_s:g}; a delivery round at once after "
                      "a change (50 ms to gather a burst)",
            "load": f"{gauges} gauges of the Blitar registry at once, each waiting for its "
                    "notice and its resolve before the next crossing"}


async def measure(broker: Mosquitto, influx: InfluxDB1, db: str, work: Path, *, samples: int,
                  gauges: int = 9, group_wait_s: float = 1.0, seed: int = 0) -> Report:
    """Run the crossings against ``broker``, ``influx`` (database ``db``) and an Alertmanager
    and ``pantau run`` started in ``work``; see the module docstring."""
    registry_path = default_registry_path()
    rivers = [d for d in load_registry(registry_path).devices if d.kind == "river_gauge"
              and {"siaga_cm", "awas_cm"} <= d.params.keys()][:gauges]
    template = (resources.files("alerts") / "data" / "pantau.tmpl").read_text(encoding="utf-8")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(*broker.admin)
    async with contextlib.AsyncExitStack() as stack:
        client.connect(broker.host, broker.port)
        client.loop_start()
        stack.callback(client.disconnect)
        stack.callback(client.loop_stop)
        run = Run(client, load_settings(None, env={}).mqtt.topic_prefix, samples, seed)
        hook = await stack.enter_async_context(_receiver(run))
        am = Alertmanager(work / "am", files={"pantau.tmpl": template},
                          config=am_config(hook, group_wait_s))
        stack.push_async_callback(asyncio.to_thread, am.stop)
        await asyncio.to_thread(am.start)
        extra = {"PANTAU_PROCESSORS_FLOOD_MIN_DURATION_S": "0",
                 "PANTAU_ALERTS_ALERTMANAGER_URLS": am.url,
                 "PANTAU_MQTT_CLIENT_ID": f"pantau-bench-alerts-{os.getpid()}-{time.time_ns()}"}
        config = _config(load_settings(None, env={**os.environ, **extra}), group_wait_s,
                         len(rivers))
        _, url = await stack.enter_async_context(_thread_cm(running_pantau(
            broker, influx, db, registry_path, work / "pantau.log", **extra)))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with asyncio.TaskGroup() as tg:
            poller = tg.create_task(run.poll(http, am.url))
            before = await asyncio.to_thread(_metrics, url)
            await asyncio.gather(*(run.gauge(d) for d in rivers))
            after = await asyncio.to_thread(_metrics, url)
            poller.cancel()
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return Report(run.samples, config, (_quantile(delta, 0.5), _quantile(delta, 0.99)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau bench --alerts --latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=300, help="Siaga crossings (default 300)")
    p.add_argument("--gauges", type=int, default=9, help="river gauges at once (default 9)")
    p.add_argument("--group-wait", type=float, default=1.0,
                   help="Alertmanager group_wait and group_interval, s (default 1)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pantau-bench-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mqtt", users=stack_users([]))
        influx = InfluxDB1(work / "influx", database="bench")
        print(f"starting Mosquitto, InfluxDB, Alertmanager and Pantau in {work} ...", flush=True)
        with broker, influx:
            influx.create_database("bench")
            influx.create_tiers("bench")
            report = asyncio.run(measure(broker, influx, "bench", work, samples=a.samples,
                                         gauges=a.gauges, group_wait_s=a.group_wait))
    print("\n" + "\n".join(report.lines()))
    return 0 if report.arrived == len(report.samples) == a.samples else 1
