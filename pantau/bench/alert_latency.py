"""``pantau bench --alerts --latency``: from a river gauge's reading to Alertmanager and to the
on-call channel, end to end (a documented command, not a test).

Mosquitto and InfluxDB (`pantau.devstack`), Debian's Alertmanager with the configuration
generated from the shipped rules (``group_wait`` and ``group_interval`` lowered to
``--group-wait``), a local aiohttp webhook receiver, and ``pantau run`` as its own process with
the shipped settings but ``processors.flood_min_duration_s = 0`` (that duration is device time,
not delay). ``--gauges`` Blitar river gauges at once each publish a level between Siaga and
Awas stamped with the wall clock (the crossing), wait for its ``FloodStage`` Siaga notice,
publish their base level (the fall) and wait for the resolve; until ``--samples`` crossings;
``--background`` adds a steady load of weather-station messages (`pantau.bench.load`).
Per crossing: publish -> Alertmanager accepted (the alert's ``updatedAt``, Alertmanager's clock
when a POST carried it, the earliest that ``GET /api/v2/alerts`` polled every 20 ms shows with
this crossing's reading time, ``observed_at``); publish -> firing notice at the webhook;
fall -> resolve notice.
Prints p50/p90/p99/max with the sample count, the settings that govern them, and Pantau's
publish-to-stored delay (``pantau_ingest_delay_seconds``) for the breakdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from ruamel.yaml import YAML

from alerts.amconfig import Channels, generate
from alerts.rules_yaml import default_rules_path, load_rules
from devices.registry import default_registry_path, load_registry
from pantau.bench import _metrics, _quantile, running_pantau
from pantau.bench.alert_crossings import Run, Sample, receiver
from pantau.bench.load import publish
from pantau.config import load_settings
from pantau.devstack import InfluxDB1, Mosquitto, stack_users
from pantau.devstack.alertmanager import Alertmanager
from pantau.settings import Settings


@dataclass
class Report:
    """The crossings (in the order they were published), the settings printed with them, and
    Pantau's publish-to-stored p50/p99 over every reading of the run."""

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


@contextlib.asynccontextmanager
async def _thread_cm(cm: contextlib.AbstractContextManager[Any]) -> AsyncIterator[Any]:
    """A blocking context manager entered and left in a worker thread."""
    value = await asyncio.to_thread(cm.__enter__)
    try:
        yield value
    finally:
        await asyncio.to_thread(cm.__exit__, None, None, None)


def _config(s: Settings, group_wait_s: float, gauges: int, rate: float) -> dict[str, str]:
    return {"Alertmanager": f"group_wait {group_wait_s:g} s, group_interval {group_wait_s:g} s "
                            "(lowered for the bench; shipped: 30 s, 5 min)",
            "Pantau": f"influx.flush_interval_s {s.influx.flush_interval_s:g} (the batch "
                      f"window), alerts.sweep_s {s.alerts.sweep_s:g}, alerts.resend_s "
                      f"{s.alerts.resend_s:g}, processors.flood_min_duration_s "
                      f"{s.processors.flood_min_duration_s:g}; a delivery round at once after "
                      "a change (50 ms to gather a burst)",
            "load": f"{gauges} gauges of the Blitar registry at once, each waiting for its "
                    "notice and its resolve before the next crossing; background: "
                    + (f"{rate:g} msg/s from the weather stations" if rate else "none")}


async def measure(broker: Mosquitto, influx: InfluxDB1, db: str, work: Path, *, samples: int,
                  gauges: int = 9, group_wait_s: float = 1.0, background: float = 0.0,
                  seed: int = 0) -> Report:
    """Run the crossings against ``broker``, ``influx`` (database ``db``) and an Alertmanager
    and ``pantau run`` started in ``work``, with ``background`` msg/s of weather-station
    readings meanwhile (a publisher process); see the module docstring."""
    registry_path = default_registry_path()
    devices = load_registry(registry_path).devices
    rivers = [d for d in devices if d.kind == "river_gauge"
              and {"siaga_cm", "awas_cm"} <= d.params.keys()][:gauges]
    stations = [(d.site, d.id) for d in devices if d.kind == "weather_station"]
    template = (resources.files("alerts") / "data" / "pantau.tmpl").read_text(encoding="utf-8")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(*broker.admin)
    async with contextlib.AsyncExitStack() as stack:
        client.connect(broker.host, broker.port)
        client.loop_start()
        stack.callback(client.disconnect)
        stack.callback(client.loop_stop)
        run = Run(client, load_settings(None, env={}).mqtt.topic_prefix, samples, seed)
        hook = await stack.enter_async_context(receiver(run))
        am = Alertmanager(work / "am", files={"pantau.tmpl": template},
                          config=am_config(hook, group_wait_s))
        stack.push_async_callback(asyncio.to_thread, am.stop)
        await asyncio.to_thread(am.start)
        extra = {"PANTAU_PROCESSORS_FLOOD_MIN_DURATION_S": "0",
                 "PANTAU_ALERTS_ALERTMANAGER_URLS": am.url,
                 "PANTAU_MQTT_CLIENT_ID": f"pantau-bench-alerts-{os.getpid()}-{time.time_ns()}"}
        config = _config(load_settings(None, env={**os.environ, **extra}), group_wait_s,
                         len(rivers), background)
        _, url = await stack.enter_async_context(_thread_cm(running_pantau(
            broker, influx, db, registry_path, work / "pantau.log", **extra)))
        if background:  # stopped (terminated) once the crossings are done
            load = mp.get_context("spawn").Process(target=publish, daemon=True, args=(
                broker.host, broker.port, *broker.admin, stations, int(background * 86400), 0,
                background))
            load.start()
            stack.callback(load.join, 30)
            stack.callback(load.terminate)
            await asyncio.sleep(3.0)  # the load flowing before the first crossing
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
    p.add_argument("--background", type=float, default=0.0, metavar="RATE",
                   help="weather-station messages/s meanwhile (default 0: none)")
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
                                         gauges=a.gauges, group_wait_s=a.group_wait,
                                         background=a.background))
    print("\n" + "\n".join(report.lines()))
    return 0 if report.arrived == len(report.samples) == a.samples else 1
