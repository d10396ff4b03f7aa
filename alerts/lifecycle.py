"""The alert lifecycle: pending -> firing -> resolved, acknowledgement and escalation tiers,
kept in memory (`Book.alerts`) and in SQLite (`alerts.store.AlertDB`), every step in the
history.

An alert is created when its check leaves *inactive* (pending, or straight to firing when the
check has no ``for``); a pending alert whose condition clears before ``for`` is dropped
(history: ``inactive``); a firing one that clears becomes *resolved* and is kept
``resolved_keep_s`` (and until every Alertmanager replica took the resolve) so the resolve is
re-sent, then dropped. Should the same identity fire again meanwhile, it is a new firing (a
new ``startsAt``), acknowledgement and tier reset. Everything is written before `apply`
returns; listeners (delivery, InfluxDB events) are then told.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from alerts.machine import FIRING, INACTIVE, PENDING, Change
from alerts.store import AlertDB, Event

HISTORY_DAYS = 90


@dataclass(slots=True)
class Alert:
    """One alert (identity ``id`` = hash of ``labels``). Times are ns since the epoch, 0 when not
    (yet): ``since_ns``, ``fired_ns``, ``resolved_ns`` on the data's clock (device
    timestamps), ``raised_ns`` and ``ended_ns`` on Pantau's (when it began to fire here:
    escalation counts from it, so a backfill of old data does not escalate at once; when it
    resolved here: a resolved alert is kept ``resolved_keep_s`` from it). ``machine``: its check's
    slot state, put back after a restart. ``silences``: replica URL -> Alertmanager silence
    id while acknowledged; ``sent``: replica URL -> when it last accepted this alert."""

    id: str
    labels: dict[str, str]
    state: str
    since_ns: int
    value: float
    annotations: dict[str, str] = field(default_factory=dict)
    fired_ns: int = 0
    raised_ns: int = 0
    resolved_ns: int = 0
    ended_ns: int = 0
    acked_by: str = ""
    acked_ns: int = 0
    ack_comment: str = ""
    tier: int = 1
    tier_ns: int = 0
    silences: dict[str, str] = field(default_factory=dict)
    silence_until_ns: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        """A JSON-ready copy (shallow: `dataclasses.asdict`'s deep copy costs more than the
        rest of a transition)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["value"] = None if math.isnan(self.value) else self.value
        return d

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Alert:
        doc = dict(doc)
        doc["value"] = math.nan if doc.get("value") is None else doc["value"]
        return cls(**doc)

    def event(self, ts_ns: int, state: str, *, who: str = "", comment: str = "") -> Event:
        lb = self.labels
        value = None if math.isnan(self.value) else self.value
        return Event(ts_ns, self.id, lb["alertname"], lb["severity"], lb.get("device", ""),
                     lb.get("site", ""), lb.get("kind", ""), state, value,
                     self.annotations.get("summary", ""), who, comment)


Listener = Callable[[Alert, Event], None]


class Book:
    """Every current alert by id; the only writer of the alerts database. Event loop only."""

    def __init__(self, db: AlertDB, *, resolved_keep_s: float = 900.0) -> None:
        self.db = db
        self.alerts: dict[str, Alert] = {}
        self.keep_ns = int(resolved_keep_s * 1e9)
        self._listeners: list[Listener] = []

    def open(self, now_ns: int) -> None:
        """Load the saved alerts (history older than 90 days is dropped)."""
        for doc in self.db.open(now_ns - HISTORY_DAYS * 86400 * 10**9):
            a = Alert.from_doc(doc)
            self.alerts[a.id] = a

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _tell(self, pairs: list[tuple[Alert, Event]]) -> None:
        for alert, event in pairs:
            for listener in self._listeners:
                listener(alert, event)

    def apply(self, changes: list[tuple[str, dict[str, str], Change, dict[str, str],
                                        dict[str, Any]]], now_ns: int) -> None:
        """Apply check changes: (id, labels, change, annotations, machine state after), found
        at ``now_ns`` (Pantau's clock)."""
        upsert: dict[str, Alert] = {}
        delete: list[str] = []
        told: list[tuple[Alert, Event]] = []
        for aid, labels, ch, notes, machine in changes:
            a = self.alerts.get(aid)
            if ch.old == INACTIVE or a is None or a.state == "resolved":
                a = Alert(aid, labels, "pending", ch.ts_ns, ch.value)
                self.alerts[aid] = a
            a.value, a.machine = ch.value, machine
            a.annotations = notes
            if ch.new == FIRING:
                a.state, a.fired_ns, a.raised_ns = "firing", ch.ts_ns, now_ns
            elif ch.new == PENDING:
                a.state = "pending"
            elif ch.old == FIRING:
                a.state, a.resolved_ns, a.ended_ns, a.sent = "resolved", ch.ts_ns, now_ns, {}
            else:  # pending that never fired
                del self.alerts[aid]
                delete.append(aid)
                upsert.pop(aid, None)
                told.append((a, a.event(ch.ts_ns, "inactive")))
                continue
            upsert[aid] = a
            if aid in delete:
                delete.remove(aid)
            told.append((a, a.event(ch.ts_ns, a.state)))
        self.db.write({k: v.doc() for k, v in upsert.items()}, delete, [e for _, e in told])
        self._tell(told)

    def save(self, alert: Alert, event: Event | None = None) -> None:
        """Write one alert (after delivery or an acknowledgement changed it) and maybe an
        event."""
        self.db.write({alert.id: alert.doc()}, [], [event] if event else [])
        if event is not None:
            self._tell([(alert, event)])

    def acknowledge(self, alert: Alert, who: str, comment: str, now_ns: int) -> None:
        alert.acked_by, alert.acked_ns, alert.ack_comment = who, now_ns, comment
        self.save(alert, alert.event(now_ns, "acknowledged", who=who, comment=comment))

    def drop_resolved(self, now_ns: int, replicas: tuple[str, ...]) -> list[str]:
        """Forget resolved alerts kept long enough and taken by every replica (``sent`` is
        emptied when an alert resolves). Both on Pantau's clock: a device's clock ahead or
        behind neither keeps a resolve nor drops it early."""
        gone = [a.id for a in self.alerts.values() if a.state == "resolved"
                and now_ns - a.ended_ns >= self.keep_ns
                and all(r in a.sent for r in replicas)]
        for aid in gone:
            del self.alerts[aid]
        self.db.write({}, gone, [])
        return gone

    def history(self, filters: dict[str, set[str]], since_ns: int, limit: int) -> list[Event]:
        return self.db.history(filters, since_ns, limit)
