"""The real InfluxDB filled by the real pipeline, once per session, for the dashboard queries.

``filled`` -> `Filled`: the shipped Blitar registry simulated through the session's Mosquitto
into a running Pantau (its whole default chain, tiers written at every batch, its own metrics
every 0.5 s) for two databases: ``normal`` (the last 24 hours of the normal scenario, so the
ISPU has its 24-hour averages, with malformed payloads and sensor faults) and ``flood`` (the
last 6 hours of the flood scenario). ``end_ms`` is when the filling ended: the dashboards'
time ranges end there. Alert events are written by the real alerts lifecycle and writer;
Pantau delivers what it raises to the session's Alertmanager (which notifies nobody).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.metrics import total
from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry
from devices.simulator import Simulator, parse_faults
from devices.simulator.publish import MuxPublisher, run
from grafana.render import interval, parse_duration_ms
from pantau.devstack import PANTAU_USER, InfluxDB1, Mosquitto, free_port
from pantau.devstack.alertmanager import Alertmanager
from tests.e2e.conftest import run_pantau, scrape

HOURS = {"normal": 24, "flood": 6}
# $__interval of the Pantau boards (6 hours, the data source's 10 s minimum), in seconds.
SELF_STEP_S = parse_duration_ms(interval(6 * 3600_000, min_interval="10s")) / 1000
FAULTS = {"normal": ["malformed", "spikes", "stuck", "dropouts"], "flood": []}


@dataclass(frozen=True)
class Filled:
    dbs: dict[str, str]   # scenario -> database
    end_ms: int


async def _fill(scenario: str, db: str, mosquitto: Mosquitto, influx: InfluxDB1,
                state: Path, alertmanager_url: str) -> None:
    env = {
        "PANTAU_MQTT_URL": mosquitto.url_for(PANTAU_USER),
        "PANTAU_MQTT_CLIENT_ID": f"pantau-grafana-{os.getpid()}-{scenario}",
        "PANTAU_MQTT_SESSION_EXPIRY_S": "60",  # no session left queueing for later tests
        "PANTAU_INFLUX_URL": influx.url, "PANTAU_INFLUX_DATABASE": db,
        "PANTAU_INFLUX_USERNAME": influx.writer.username,
        "PANTAU_INFLUX_PASSWORD": influx.writer.password,
        "PANTAU_INFLUX_READ_USERNAME": influx.reader.username,
        "PANTAU_INFLUX_READ_PASSWORD": influx.reader.password,
        "PANTAU_INFLUX_FLUSH_INTERVAL_S": "0.05",
        "PANTAU_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "PANTAU_STATE_DIR": str(state / scenario),
        "PANTAU_PROCESSORS_SNAPSHOT_INTERVAL_S": "0",  # tiers written with every batch
        "PANTAU_SELF_METRICS_INTERVAL_S": "0.5",
        # Alerts are delivered (the Watchdog at least), so the Pantau board's delivery panels
        # have Pantau's own figures.
        "PANTAU_ALERTS_ALERTMANAGER_URLS": alertmanager_url,
        "PANTAU_ALERTS_RESEND_S": "1", "PANTAU_ALERTS_SWEEP_S": "0.5",
    }
    path = default_registry_path()
    registry = load_registry(path)
    sim = Simulator(registry, scenario_name=scenario, seed=7, rivers=load_rivers(path, registry),
                    start_s=float(int(time.time()) - HOURS[scenario] * 3600),
                    faults=parse_faults(FAULTS[scenario]), tick_s=30.0)
    user, password = mosquitto.admin
    async with run_pantau(env):
        pub = MuxPublisher(mosquitto.host, mosquitto.port, user, password)
        try:
            await asyncio.to_thread(run, sim, pub.publish, pump=pub.pump, flat_out=True,
                                    duration_s=HOURS[scenario] * 3600 - 60,
                                    report=lambda _: None)
            await asyncio.to_thread(pub.pump, 1.0)
            sent = pub.acked
        finally:
            pub.close()
        state_: dict[str, float] = {}

        async def drained() -> bool:
            m = await scrape(env)
            state_["received"] = total(m, "pantau_messages_received_total")
            return state_["received"] >= sent and total(m, "pantau_messages_unacked") == 0
        deadline = time.monotonic() + 120
        while not await drained():
            assert time.monotonic() < deadline, f"Pantau got {state_} of {sent} messages"
            await asyncio.sleep(0.2)
        # Per-interval derivatives of Pantau's own counters (the Pantau boards) need points in
        # two of the boards' GROUP BY intervals: run on into the next one, then two more
        # self-metrics intervals. A fill shorter than one interval lay within a single one
        # whenever it did not happen to cross a boundary (CI: those panels had no rows).
        step = SELF_STEP_S
        await asyncio.sleep((time.time() // step + 1) * step - time.time() + 1.2)


# Alert names of `_alert_events` whose last lifecycle state is firing (an acknowledgement and
# an escalation do not end it) and of one that fired and was resolved.
STILL_FIRING = ("Test_acknowledged", "Watchdog")
RESOLVED = "Test_resolved"


def _alert_events(influx: InfluxDB1, db: str, end_s: int, state: Path) -> None:
    """Alert transitions written as alerts/ writes them: the real lifecycle (`Book`) and its
    InfluxDB line (`alerts.events.line`). One firing alert per device kind, the Watchdog, one
    alert escalated and acknowledged while it fires, one fired and resolved."""
    from alerts.events import line
    from alerts.lifecycle import Alert, Book
    from alerts.machine import FIRING, INACTIVE, Change
    from alerts.store import AlertDB, Event

    told: list[Event] = []
    db_file = AlertDB(state / f"alerts-{db}.sqlite")
    db_file.open()
    book = Book(db_file)
    book.subscribe(lambda _, event: told.append(event))
    first: dict[str, tuple[str, str]] = {}
    for d in load_registry(default_registry_path()).devices:
        first.setdefault(d.kind, (d.id, d.site))
    river, (gauge, site) = "river_gauge", first["river_gauge"]
    labels = [{"alertname": f"Test_{kind}", "severity": "warning", "device": dev,
               "site": site_, "kind": kind} for kind, (dev, site_) in first.items()]
    labels += [{"alertname": "Watchdog", "severity": "none"}] + [
        {"alertname": name, "severity": "critical", "device": gauge, "site": site,
         "kind": river} for name in (STILL_FIRING[0], RESOLVED)]

    def at(k: int) -> int:
        return (end_s - 600 * (len(labels) + 2 - k)) * 10**9

    for k, lb in enumerate(labels):
        change = Change(slot=k, ts_ns=at(k), old=INACTIVE, new=FIRING, value=k + 0.5)
        book.apply([(lb["alertname"], lb, change, {"summary": f"{lb['alertname']} test"}, {})],
                   at(k))
    n = len(labels)
    acked: Alert = book.alerts[STILL_FIRING[0]]
    book.save(acked, acked.event(at(n), "escalated to tier 2"))  # as alerts.delivery does
    book.acknowledge(acked, "operator", "crew on site", at(n + 1))
    gone = book.alerts[RESOLVED]
    book.apply([(RESOLVED, gone.labels, Change(slot=n - 1, ts_ns=at(n + 1), old=FIRING,
                                               new=INACTIVE, value=0.0), gone.annotations, {})],
               at(n + 1))
    influx.write([line(e) for e in told], db=db)


@pytest.fixture(scope="session")
def filled(mosquitto: Mosquitto, influx: InfluxDB1, alertmanager: Alertmanager,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    dbs = {}
    state = tmp_path_factory.mktemp("grafana-fill")
    for scenario in HOURS:
        db = influx.create_database(f"grafana_{scenario}")
        for rp in ("tier_1m", "tier_1h"):
            influx.query(f'CREATE RETENTION POLICY "{rp}" ON "{db}" DURATION INF '
                         "REPLICATION 1", db="", user="admin")
        t0 = time.monotonic()
        asyncio.run(_fill(scenario, db, mosquitto, influx, state, alertmanager.url))
        print(f"filled {scenario} in {time.monotonic() - t0:.1f} s")
        dbs[scenario] = db
    end_s = int(time.time())
    for db in dbs.values():
        _alert_events(influx, db, end_s, state)
    yield Filled(dbs, end_s * 1000)
    for db in dbs.values():
        influx.drop_database(db)
