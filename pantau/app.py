"""Wiring: build every stage from `Settings` and run them until asked to stop.

Start order follows the data backwards (sink, writer, HTTP, then the MQTT source); stop order
follows it forwards: stop reading, drain what was read into the database, acknowledge, then
disconnect. Anything not acknowledged by then stays in the broker's session for next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable
from pathlib import Path

from alerts.service import AlertService, per_minute, rejected_messages
from core.metrics import Metrics
from devices.api import PREFIX as DEVICES_API
from devices.api import devices_api
from devices.cadence import CadenceWatch
from devices.registry import Registry, default_registry_path, load_registry
from devices.series import SeriesTable
from devices.status import StatusStore
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder
from ingest.influx_query import InfluxQLReader, QueryError
from ingest.influx_sink import make_sink
from ingest.mqtt_source import MqttSource
from ingest.pipeline import Pipeline
from ingest.self_metrics import SelfMetrics
from ingest.snapshot import StateFile
from ingest.warmup import warm_up
from pantau.http_api import Check, SubApp, build_app, start_http
from pantau.malloc import fix_mmap_threshold
from pantau.settings import Settings
from pantau.tokens import token_file
from processors import Chain, ProcessorContext, build_chain

log = logging.getLogger("pantau")

DRAIN_TIMEOUT_S = 15.0


def load_configured_registry(settings: Settings) -> Registry:
    return load_registry(settings.registry or default_registry_path())


async def warm_up_state(chain: Chain, settings: Settings, restored: bool) -> None:
    """Replay stored readings into the processors (`ingest.warmup`): the last hours when no
    snapshot was restored, what it may lack when one was (``restored``: the catch-up).
    A failure is logged, and ingest starts with the state it has."""
    max_s = settings.processors.warmup_max_s
    inf = settings.influx
    if max_s <= 0 or not chain.stateful:
        return
    if inf.api == "v2" and not inf.read_username:
        log.info("warm-up from InfluxDB skipped: on InfluxDB 2.x it reads through the v1 "
                 "compatibility API; set influx.read_username/read_password (a v1 "
                 "authorisation with read access) and influx.database (the DBRP name)")
        return
    catch_up = restored
    what = "catching up after the snapshot" if catch_up else "no usable snapshot"
    try:
        async with InfluxQLReader(inf) as reader:
            report = await warm_up(chain, reader, now_ns=time.time_ns(), max_s=max_s,
                                   retention_policy=inf.retention_policy, catch_up=catch_up)
    except QueryError as e:
        log.warning("warm-up (%s): cannot read the stored readings (%s); going on with %s",
                    what, e, "the snapshot's state" if catch_up else "fresh state")
        return
    except Exception:  # a bug here must not keep ingest from starting
        log.exception("warm-up failed; going on with the state it has")
        return
    seeded = ", ".join(f"{n} {name}" for name, n in report.seeded.items()) or "nothing"
    log.info("warm-up (%s): %d stored readings read back and replayed in %.1f s (%d "
             "queries); seeded %s", what, report.readings, report.seconds, report.queries,
             seeded)


async def until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first: then cancel it, wait until it has
    unwound, and return False."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return False
    task.result()
    return True


async def run(settings: Settings, *, stop: asyncio.Event | None = None,
              started: asyncio.Event | None = None) -> None:
    """Run Pantau until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is None)."""
    fix_mmap_threshold(settings.malloc_mmap_threshold_kib)  # before the arrays (`pantau.malloc`)
    registry = load_configured_registry(settings)
    table = SeriesTable.from_registry(registry)
    metrics = Metrics()
    ing = settings.ingest
    decoder = Decoder(table, topic_prefix=settings.mqtt.topic_prefix,
                      max_payload_bytes=ing.max_payload_bytes,
                      max_future_ns=int(ing.max_future_s * 1e9),
                      max_age_ns=int(ing.max_age_s * 1e9))
    chain = build_chain(ing.processors, ProcessorContext(table, ing.range_mode,
                                                         settings.processors))
    status = StatusStore(Path(settings.state_dir) / "pantau.sqlite", table, clock=time.time_ns)

    # Announced Maximum Packet Size: above the broker's limits (deploy/mosquitto), so that
    # whatever it accepts reaches Pantau and an oversized payload is dead-lettered, not lost.
    source = MqttSource(settings.mqtt, lambda *a: None, metrics,
                        max_packet_size=2 * ing.max_payload_bytes)
    dl_path = Path(ing.deadletter_file or Path(settings.state_dir) / "deadletter.jsonl")
    deadletter = DeadLetter(dl_path, source.publish, settings.mqtt.deadletter_topic,
                            keep_payload=ing.max_payload_bytes, metrics=metrics)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    async with make_sink(settings.influx, chain.table or table) as sink:
        await status.open()
        alerts = AlertService(
            settings.alerts, chain.table, state_dir=settings.state_dir, metrics=metrics,
            events_to=sink, health={
                "writes_failing": lambda: float(not pipeline.sink_ok),
                "broker_disconnected": lambda: float(not source.connected),
                "deadletter_per_min": per_minute(rejected_messages(metrics), time.time_ns)})
        alerts.open()
        status.subscribe(alerts)
        inf = settings.influx
        pipeline = Pipeline(decoder=decoder, chain=chain, sink=sink, deadletter=deadletter,
                            metrics=metrics, broker=source, batch_size=inf.batch_size,
                            max_batch_size=inf.max_batch_size,
                            flush_interval_s=inf.flush_interval_s,
                            pending_batches=ing.pending_batches,
                            max_unacked=settings.mqtt.max_unacked,
                            retry_min_s=inf.retry_min_s,
                            retry_max_s=inf.retry_max_s, clock=time.time_ns,
                            on_status=status.on_status,
                            listeners=[status, CadenceWatch(table, metrics), alerts],
                            state_file=StateFile(Path(settings.state_dir) / "processors.npz"),
                            snapshot_interval_s=settings.processors.snapshot_interval_s)
        if not await until_stopped(warm_up_state(chain, settings, pipeline.restore_state()),
                                   stop):
            # A half-replayed state must never become the snapshot (`ingest.warmup`): leave
            # before the writer runs, so no checkpoint saves it; nothing was read or acked.
            log.info("stopped during the warm-up; the processors' state is not saved, the "
                     "next start warms up again")
            await status.close()
            alerts.close()
            return
        pipeline.publish_counts()
        own = SelfMetrics(metrics, settings.self_metrics, settings.influx, status=status,
                          instance=settings.self_metrics.instance or settings.mqtt.client_id)
        source.handler = pipeline.on_message

        # /readyz is public: it says what fails, the log says why (URLs, users, databases).
        async def mqtt_check() -> str:
            return "" if source.connected else "not connected"

        ping_error = [""]

        async def db_check() -> str:
            try:
                await sink.ping()
            except Exception as e:  # any failure means not ready; logged once per change
                if str(e) != ping_error[0]:
                    log.warning("readiness: the database does not answer: %s", e)
                ping_error[0] = str(e)
                return "not reachable"
            ping_error[0] = ""
            return "" if pipeline.sink_ok else "writes failing"

        tokens = token_file(settings)
        if not tokens.current():
            log.warning("no API tokens in %s: /api/ answers 401 until one is created with "
                        "`pantau tokens create --role viewer --name NAME`", tokens.path)
        async def deadletter_check() -> str:  # disk full or read-only: nothing is acked
            return deadletter.last_error

        app = build_app(metrics, [Check("mqtt", mqtt_check), Check("database", db_check),
                                  Check("deadletter", deadletter_check)],
                        [SubApp(DEVICES_API, devices_api(registry, status), write_role="admin"),
                         SubApp("/api/alerts", alerts.api(), write_role="operator"),
                         # no token: each signed link is its own authority
                         SubApp("/ack", alerts.links(), public=True)],
                        tokens=tokens)
        http = await start_http(app, settings.http.host, settings.http.port)
        # What start-up built (registry, series table, rules, modules) lives as long as the
        # process: out of the collector's reach, a full collection no longer walks it (one
        # stalled the event loop 70 ms under overload: docs/reliability.md, finding 6).
        gc.freeze()
        log.info("Pantau is up: %d devices, %d series; HTTP on http://%s/ (metrics, readyz, "
                 "api/devices); dead letters in %s", len(registry.devices), len(table),
                 settings.http.listen, dl_path)
        try:
            async with asyncio.TaskGroup() as tg:
                writer = tg.create_task(pipeline.run(), name="writer")
                conn = tg.create_task(source.run(), name="mqtt")
                house = tg.create_task(source.housekeeping(), name="mqtt-housekeeping")
                sweeper = tg.create_task(status.run(hold=lambda: not pipeline.sink_ok),
                                         name="device-status")
                counters = tg.create_task(own.run(), name="self-metrics")
                raising = tg.create_task(alerts.run(), name="alerts")
                if started is not None:
                    waiting = asyncio.ensure_future(source.wait_subscribed())
                    await asyncio.wait({waiting, asyncio.ensure_future(stop.wait())},
                                       return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    started.set()
                await stop.wait()
                log.info("stopping: draining what was read into the database")
                source.pause()
                try:
                    await asyncio.wait_for(pipeline.drain(), DRAIN_TIMEOUT_S)
                except TimeoutError:
                    log.warning("drain timed out; unacknowledged messages stay in the broker")
                for t in (house, conn, writer, sweeper, counters, raising):
                    t.cancel()
        finally:
            with contextlib.suppress(Exception):
                await http.cleanup()
            await status.close()
            alerts.close()
        log.info("stopped")
