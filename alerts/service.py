"""`AlertService`: the alerts package in one object for the composition root (`pantau.app`).

Built from the ``[alerts]`` settings and the chain's series table (no I/O); `open` loads the
saved alerts and puts their state back into the rules, `run` runs the periodic sweep (offline
for long enough, Pantau's health, the Watchdog, InfluxDB events) and the delivery to
Alertmanager until cancelled, `close` closes the database. It is a stored-batch listener
(`on_stored`) and a device-status listener (`on_transition`); `api` and `links` are the HTTP
sub-apps (``/api/alerts``; ``/ack``, which needs no token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from aiohttp import web

from alerts.alertmanager import AlertmanagerClient
from alerts.api import ack_links, alerts_api
from alerts.compile import Check, compile_rules
from alerts.delivery import Delivery
from alerts.evaluate import Evaluator
from alerts.events import AlertEvents
from alerts.lifecycle import Alert, Book
from alerts.links import load_key
from alerts.rules import RuleSet
from alerts.rules_yaml import default_rules_path, load_rules
from alerts.settings import AlertSettings
from alerts.store import AlertDB
from core.metrics import Metrics
from core.reasons import Reason
from core.stored import Stored
from devices.series import SeriesTable
from devices.status import Transition
from ingest.influx_sink import LineWriter

Probe = Callable[[], float]


def configured_rules(settings: AlertSettings) -> RuleSet:
    """The rules file the settings name (``none``: no rules)."""
    if settings.rules == "none":
        return RuleSet(())
    return load_rules(settings.rules or default_rules_path())


def rejected_messages(metrics: Metrics) -> Probe:
    """A probe of how many whole messages were rejected (dead-lettered) so far."""
    slugs = [r.slug for r in Reason if r != Reason.OK]
    return lambda: sum(metrics.value("pantau_messages_rejected_total", reason=s) for s in slugs)


def per_minute(total: Probe, clock: Callable[[], int]) -> Probe:
    """A probe of how fast the count ``total`` grows, per minute, between two calls."""
    last: list[tuple[int, float]] = []

    def rate() -> float:
        now, count = clock(), total()
        prev = last[0] if last else (now, count)
        last[:] = [(now, count)]
        dt_min = (now - prev[0]) / 60e9
        return (count - prev[1]) / dt_min if dt_min > 0 else 0.0

    return rate


class AlertService:
    def __init__(self, settings: AlertSettings, table: SeriesTable, *, state_dir: str | Path,
                 metrics: Metrics, health: Mapping[str, Probe] | None = None,
                 events_to: LineWriter | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.settings, self.clock = settings, clock
        self.state_dir = Path(state_dir)
        self.checks: list[Check] = compile_rules(configured_rules(settings), table)
        self.book = Book(AlertDB(self.state_dir / "alerts.sqlite"),
                         resolved_keep_s=settings.resolved_keep_s)
        self.evaluator = Evaluator(self.checks, table, self.book,
                                   dashboard_url=settings.dashboard_url)
        self.health = dict(health or {})
        self.key = b""
        self._metrics = metrics
        self.events = AlertEvents(events_to, metrics) \
            if events_to is not None and settings.influx_events else None
        if self.events is not None:
            self.book.subscribe(self.events)
        self.delivery: Delivery | None = None

    def open(self) -> None:
        """Load the saved alerts and the link key; put the alerts' state back."""
        self.key = load_key(self.settings.ack_secret.reveal(), self.state_dir / "alerts.key")
        clients = [AlertmanagerClient(u, timeout_s=self.settings.timeout_s)
                   for u in self.settings.alertmanager_urls]
        self.delivery = Delivery(self.book, clients, self.settings, self.key, self._metrics,
                                 clock=self.clock)
        now = self.clock()
        self.book.open(now)
        self.evaluator.restore(now)

    def close(self) -> None:
        self.book.db.close()

    # -- listeners (event loop) -----------------------------------------------------------
    def on_stored(self, stored: Stored) -> None:
        self.evaluator.on_stored(stored)

    def on_transition(self, change: Transition) -> None:
        self.evaluator.on_transition(change)

    def acknowledge(self, alert: Alert, who: str, comment: str) -> None:
        self.book.acknowledge(alert, who, comment, self.clock())

    # -- HTTP -------------------------------------------------------------------------------
    def api(self) -> web.Application:
        return alerts_api(self.book, self.acknowledge)

    def links(self) -> web.Application:
        return ack_links(self.book, self.key, self.acknowledge, self.clock)

    # -- background -------------------------------------------------------------------------
    def sweep(self) -> None:
        self.evaluator.sweep(self.clock(), {name: p() for name, p in self.health.items()})

    async def run(self) -> None:
        """Sweep every ``sweep_s`` and deliver, until cancelled."""
        if self.delivery is None:
            raise RuntimeError("AlertService.open() first")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.delivery.run(), name="alert-delivery")
            while True:
                self.sweep()
                if self.events is not None:
                    await self.events.flush()
                await asyncio.sleep(self.settings.sweep_s)
