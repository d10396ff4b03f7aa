"""The SQLite side of the alerts: the current alerts, the history of every transition and the
acknowledgement links already used, in ``<state_dir>/alerts.sqlite`` (WAL).

`AlertDB` is synchronous and called from the event loop: an alert changes rarely, and writing
the change *before* the batch that caused it is acknowledged to the broker (`on_stored` runs
before the ack) is what lets a restart neither re-fire nor forget. Each write is one small
transaction; the cost per stored batch without a transition is nothing. A file SQLite cannot
use never stops start-up: it is set aside as ``alerts.sqlite.corrupt-<time>`` with a warning.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.sqlite import Database, open_checked

log = logging.getLogger("pantau.alerts")
SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (id TEXT PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_history (
    ts_ns INTEGER NOT NULL, id TEXT NOT NULL, alertname TEXT NOT NULL, severity TEXT NOT NULL,
    device TEXT NOT NULL, site TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
    value REAL, message TEXT NOT NULL, who TEXT NOT NULL, comment TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_history_by_time ON alert_history (ts_ns);
CREATE TABLE IF NOT EXISTS ack_link_used (nonce TEXT PRIMARY KEY, ts_ns INTEGER NOT NULL)
    WITHOUT ROWID;
"""
HISTORY_FILTERS = ("id", "alertname", "severity", "device", "site", "kind", "state")


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the history: an alert's transition, acknowledgement or escalation."""

    ts_ns: int
    id: str
    alertname: str
    severity: str
    device: str
    site: str
    kind: str
    state: str
    value: float | None
    message: str
    who: str = ""
    comment: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class AlertDB(Database):
    """One SQLite connection, used from one thread (the event loop's)."""

    what = "alerts database"

    def open(self, prune_before_ns: int = 0) -> list[dict[str, Any]]:
        """Create the file and schema when missing, drop history and used links older than
        ``prune_before_ns``; return the saved alerts (their documents). A corrupt file is set
        aside and an empty store started (`core.sqlite.open_checked`)."""
        def setup(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            conn.executescript(SCHEMA)
            with conn:
                conn.execute("BEGIN")
                conn.execute("DELETE FROM alert_history WHERE ts_ns < ?", (prune_before_ns,))
                conn.execute("DELETE FROM ack_link_used WHERE ts_ns < ?", (prune_before_ns,))
            try:
                return [json.loads(doc) for (doc,) in conn.execute("SELECT doc FROM alert")]
            except ValueError as e:  # a damaged page the quick check let through
                raise sqlite3.DatabaseError(f"a saved alert is not JSON: {e}") from e

        self._conn, docs = open_checked(
            self.path, setup, log=log,
            lost="alerts store (the alerts' history and state are gone; conditions that still "
                 "hold raise their alerts again)")
        return docs

    def write(self, upsert: Mapping[str, dict[str, Any]], delete: Sequence[str],
              events: Sequence[Event]) -> None:
        """Save alerts, drop others, append history: one transaction."""
        if not (upsert or delete or events):
            return
        conn = self.conn
        with conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO alert VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
                             "doc = excluded.doc",
                             [(k, json.dumps(v, sort_keys=True)) for k, v in upsert.items()])
            conn.executemany("DELETE FROM alert WHERE id = ?", [(k,) for k in delete])
            conn.executemany("INSERT INTO alert_history VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                             [(e.ts_ns, e.id, e.alertname, e.severity, e.device, e.site, e.kind,
                               e.state, e.value, e.message, e.who, e.comment) for e in events])

    def use_link(self, nonce: str, ts_ns: int) -> bool:
        """Record a link as used; False when it already was (a replay)."""
        with self.conn as conn:
            cur = conn.execute("INSERT OR IGNORE INTO ack_link_used VALUES (?, ?)", (nonce, ts_ns))
            return cur.rowcount == 1

    def history(self, filters: Mapping[str, set[str]], since_ns: int, limit: int) -> list[Event]:
        """Events newest first; ``filters``: column -> accepted values (`HISTORY_FILTERS`)."""
        where: list[str] = ["ts_ns >= ?"]
        args: list[object] = [since_ns]
        for col, values in filters.items():
            if col not in HISTORY_FILTERS:
                raise ValueError(f"cannot filter the history by {col!r}")
            where.append(f"{col} IN ({','.join('?' * len(values))})")
            args += sorted(values)
        rows = self.conn.execute(
            f"SELECT * FROM alert_history WHERE {' AND '.join(where)} "
            "ORDER BY ts_ns DESC, rowid DESC LIMIT ?", [*args, limit]).fetchall()
        return [Event(*r) for r in rows]
