"""One scenario's private stack: Mosquitto configured as ``deploy/`` ships it, InfluxDB 1.x, a
registry of weather stations, Pantau as a child process, publisher processes, and the checks
every scenario ends with (`Rig.finish`).

Stated bounds (docs/reliability.md): Pantau's peak RSS stays under `RSS_BOUND_MB`, and it holds
at most ``mqtt.max_unacked`` messages (plus one socket read, `UNACKED_SLACK`) unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from core.metrics import total
from pantau.devstack import (
    PANTAU_USER,
    InfluxDB1,
    Mosquitto,
    ensure_packages,
    free_port,
    stack_users,
)
from pantau.faults.load import SITE, Plan, Sent, publish
from pantau.faults.proc import FaultError, PantauProc, Sampler
from pantau.faults.report import Key, Ledger, Result, dead_letters, reconcile

RSS_BOUND_MB = 300.0
UNACKED_SLACK = 1000
PAGE_ROWS = 200_000  # readings per read-back query
DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
DB = "faults"

Sends = list[tuple[tuple[str, ...], Sent]]


#: Broker limits read from the shipped config: these through `Mosquitto`'s arguments...
DEPLOY_ARGS = ("autosave_interval", "max_inflight_messages", "max_queued_messages")
#: ...and these appended to its config when the shipped one sets them (the last line wins).
DEPLOY_LINES = ("autosave_on_changes", "max_queued_bytes", "message_size_limit",
                "max_packet_size")


def deploy_broker_settings(path: Path = DEPLOY_CONF) -> dict[str, int]:
    """The persistence and queue limits of the broker config the project ships."""
    text = path.read_text()
    found = {k: int(m.group(1)) for k in DEPLOY_ARGS + DEPLOY_LINES
             if (m := re.search(rf"^{k}\s+(\d+)", text, re.MULTILINE))}
    missing = [k for k in DEPLOY_ARGS if k not in found]
    if missing:
        raise FaultError(f"{path}: no {', '.join(missing)}")
    return found


class Broker(Mosquitto):
    """`Mosquitto` with the shipped limits, and optionally a second listener ``extra``
    (host, port), e.g. on an address a network namespace reaches."""

    def __init__(self, workdir: Path, *, extra: tuple[str, int] | None = None) -> None:
        limits = deploy_broker_settings()
        super().__init__(workdir, users=stack_users([]),
                         autosave_interval=limits["autosave_interval"],
                         max_inflight_messages=limits["max_inflight_messages"],
                         max_queued_messages=limits["max_queued_messages"])
        self.lines = [f"{k} {limits[k]}" for k in DEPLOY_LINES if k in limits]
        if extra:
            self.lines.append(f"listener {extra[1]} {extra[0]}")

    def _prepare(self) -> list[str]:
        argv = super()._prepare()
        with open(self.conf_path, "a") as f:
            f.write("".join(line + "\n" for line in self.lines))
        return argv


class Rig:
    """Use as ``async with Rig(work, devices=...) as rig``; the services stop at the end."""

    def __init__(self, work: Path, *, devices: int = 200, interval_s: float = 60.0,
                 publishers: int = 2, mqtt_extra: tuple[str, int] | None = None) -> None:
        self.work = work
        self.devices = tuple(f"fd-{i:05d}" for i in range(devices))
        self.interval_s, self.publishers = interval_s, publishers
        self.broker = Broker(work / "mqtt", extra=mqtt_extra)
        self.influx = InfluxDB1(work / "influx", database=DB)
        self.registry = work / "registry.yaml"
        self.state = work / "state"
        self.procs: list[PantauProc] = []
        self.samplers: list[tuple[Sampler, asyncio.Task[None]]] = []
        self._pool = ProcessPoolExecutor(publishers, mp_context=mp.get_context("spawn"))

    async def __aenter__(self) -> Rig:
        ensure_packages("mosquitto", "influxdb")
        self.registry.write_text("\n".join([
            "sites:", f"  - {{id: {SITE}, lat: -8.1, lon: 112.2}}", "kinds:",
            "  weather_station:", f"    interval_s: {self.interval_s}", "    metrics:",
            "      temperature_c: {unit: degC, min: -50, max: 80}",
            "      humidity_pct: {unit: '%', min: 0, max: 100}", "devices:",
            *(f"  - {{id: {d}, kind: weather_station, site: {SITE}}}" for d in self.devices),
            ""]))
        try:
            warm = [asyncio.wrap_future(self._pool.submit(time.sleep, 0.1))
                    for _ in range(self.publishers)]  # spawn the publishers' processes now
            await asyncio.to_thread(self.broker.start)
            await asyncio.to_thread(self.influx.start)
            await asyncio.gather(*warm)
            self.influx.create_database(DB)
            self.influx.create_tiers(DB)
        except BaseException:
            await self.__aexit__()  # never leave a half-started stack behind
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, task in self.samplers:
            task.cancel()
        for p in self.procs:
            if p.pid is not None:
                await p.stop(within=30)
        self._pool.shutdown(cancel_futures=True)
        await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.influx.stop)

    def env(self, **overrides: str) -> dict[str, str]:
        i = self.influx
        env = {"PANTAU_MQTT_URL": self.broker.url_for(PANTAU_USER),
               "PANTAU_MQTT_CLIENT_ID": "pantau-faults",
               "PANTAU_INFLUX_URL": i.url, "PANTAU_INFLUX_DATABASE": DB,
               "PANTAU_INFLUX_USERNAME": i.writer.username,
               "PANTAU_INFLUX_PASSWORD": i.writer.password,
               "PANTAU_INFLUX_READ_USERNAME": i.reader.username,
               "PANTAU_INFLUX_READ_PASSWORD": i.reader.password,
               "PANTAU_REGISTRY": str(self.registry),
               "PANTAU_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
               "PANTAU_STATE_DIR": str(self.state), "PANTAU_LOG_LEVEL": "INFO",
               # The shipped Blitar rules name river gauges; this registry has none.
               "PANTAU_ALERTS_RULES": "none"}
        return {**env, **overrides}

    async def pantau(self, netns: str | None = None, ready: bool = True,
                     **overrides: str) -> PantauProc:
        """Start ``pantau run`` (and sample it); with ``ready``, wait for ``/readyz``."""
        p = PantauProc(self.env(**overrides), self.work / f"pantau-{len(self.procs)}.log", netns)
        self.procs.append(p)
        p.start()
        sampler = Sampler(p)
        self.samplers.append((sampler, asyncio.create_task(sampler.run())))
        if ready:
            await p.ready()
        return p

    def sampler(self, p: PantauProc) -> Sampler:
        return next(s for s, _ in self.samplers if s.pantau is p)

    def publish(self, n: int, rate: float = 0.0, *, bad_every: int = 50,
                host: str | None = None, port: int | None = None) -> asyncio.Future[Sends]:
        """Start the publisher processes: ``n`` messages in all at ``rate`` msg/s in all."""
        user, pw = self.broker.admin
        k = self.publishers
        loop = asyncio.get_running_loop()
        jobs = []
        for j in range(k):
            devs = self.devices[j::k]
            plan = Plan(host or self.broker.host, port or self.broker.port, user, pw, devs,
                        n // k, rate / k, bad_every)
            jobs.append((devs, loop.run_in_executor(self._pool, publish, plan, j)))

        async def gather() -> Sends:
            return [(devs, await job) for devs, job in jobs]
        return asyncio.ensure_future(gather())

    # -- reading back -------------------------------------------------------------------------
    def stored(self) -> dict[Key, tuple[Any, Any]]:
        """Every stored reading, read back in pages of about `PAGE_ROWS` (device-time slices):
        one query for two million readings outlasts an HTTP timeout."""
        n = self.count()
        if not n:
            return {}
        bounds = self.influx.rows("SELECT first(temperature_c) FROM weather_station; "
                                  "SELECT last(temperature_c) FROM weather_station", db=DB)
        t0, t1 = int(bounds[0]["time"]), int(bounds[1]["time"])
        step = (t1 - t0) // -(-n // PAGE_ROWS) + 1
        out: dict[Key, tuple[Any, Any]] = {}
        for lo in range(t0, t1 + 1, step):
            rows = self.influx.rows("SELECT temperature_c, humidity_pct FROM weather_station "
                                    f"WHERE time >= {lo} AND time < {lo + step} GROUP BY device",
                                    db=DB)
            out.update({(r["device"], r["time"]): (r["temperature_c"], r["humidity_pct"])
                        for r in rows})
        return out

    def count(self, until_ns: int | None = None) -> int:
        where = f" WHERE time <= {until_ns}" if until_ns is not None else ""
        rows = self.influx.rows(f"SELECT count(temperature_c) FROM weather_station{where}", db=DB)
        return int(rows[0]["count"]) if rows else 0

    def ledger(self, sent: Sends) -> Ledger:
        dl = self.state / "deadletter.jsonl"
        return reconcile(sent, self.stored(), dead_letters([dl.with_suffix(".jsonl.1"), dl]))

    async def settle(self, p: PantauProc, within: float = 180.0) -> None:
        """Until Pantau is connected and idle and the stored count stops moving."""
        deadline, last, since = time.monotonic() + within, -1, time.monotonic()
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, asyncio.TimeoutError):
                m = await p.metrics()
                n = await asyncio.to_thread(self.count)
                busy = (m.get("pantau_messages_unacked", 1) or m.get("pantau_readings_in_flight", 1)
                        or m.get("pantau_mqtt_connected", 0) != 1)
                if n != last or busy:
                    last, since = n, time.monotonic()
                elif time.monotonic() - since > 2.0:
                    return
            await asyncio.sleep(0.25)
        raise FaultError(f"pantau did not settle within {within:.0f} s; log:\n{p.tail()}")

    async def finish(self, r: Result, sent: Sends, p: PantauProc, *,
                     lost_ok: Callable[[Ledger], tuple[str, bool, str]] | None = None,
                     max_unacked: int = 20000) -> None:
        """The checks every scenario ends with (conservation, /metrics, memory)."""
        await self.settle(p)
        led = r.ledger = await asyncio.to_thread(self.ledger, sent)
        r.check("every message acknowledged to its publisher", led.unacked == 0,
                f"{led.unacked} never acknowledged")
        if lost_ok is None:
            r.check("nothing lost", led.lost == 0, f"{led.lost} readings")
        else:
            r.check(*lost_ok(led))
        r.check("nothing stored twice or altered", led.duplicated == 0, f"{led.duplicated}")
        r.check("dead letters only for the bad readings, with their reason",
                led.wrong_dead_letters == 0 and led.dead_lettered > 0,
                f"{led.dead_lettered} dead-lettered, {led.wrong_dead_letters} wrongly")
        m = await p.metrics()
        rec, wr = total(m, "pantau_readings_received_total"), total(m,
                                                                  "pantau_readings_written_total")
        rej, dup = total(m, "pantau_readings_rejected_total"), total(m,
                                                                   "pantau_readings_duplicate_total")
        fl = total(m, "pantau_readings_in_flight")
        r.check("/metrics: received = written + rejected + duplicate + in flight",
                rec == wr + rej + dup + fl, f"{rec:.0f} = {wr:.0f} + {rej:.0f} + {dup:.0f} + "
                f"{fl:.0f}")
        r.peak_rss_mb = max(q.peak_rss_mb for q in self.procs)
        r.check(f"peak RSS under {RSS_BOUND_MB:.0f} MB", r.peak_rss_mb < RSS_BOUND_MB,
                f"{r.peak_rss_mb:.0f} MB")
        peak = max(s.peak_unacked() for s, _ in self.samplers)
        r.check("unacknowledged messages within mqtt.max_unacked",
                peak <= max_unacked + UNACKED_SLACK, f"peak {peak:.0f} of {max_unacked}")


class Recovery:
    """Polls how many readings dated up to ``fault_end`` (wall clock s) are stored; after
    the scenario, `seconds` says when that count first reached its final value."""

    def __init__(self, rig: Rig, fault_end: float, every: float = 0.25) -> None:
        self.rig, self.fault_end, self.every = rig, fault_end, every
        self.polls: list[tuple[float, int]] = []
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        until = int(self.fault_end * 1e9)
        while True:
            with contextlib.suppress(OSError, ValueError):
                n = await asyncio.to_thread(self.rig.count, until)
                self.polls.append((time.time(), n))
            await asyncio.sleep(self.every)

    def seconds(self) -> float:
        self._task.cancel()
        final = self.rig.count(int(self.fault_end * 1e9))
        first = next((t for t, n in self.polls if n >= final), time.time())
        return max(0.0, first - self.fault_end)
