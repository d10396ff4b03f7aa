"""The SQLite side of the device status store: schema, load, batched writes, history reads.

`StatusDB` is synchronous and not thread-safe: `devices.status.StatusStore` calls it from one
dedicated writer thread only, so the event loop never waits on SQLite. The file is in WAL mode
(readers never block the writer; a crash loses at most the last uncommitted batch), and every
`write` is one transaction of three ``executemany`` calls, however many devices changed.

A file SQLite cannot use (truncated, garbage, a malformed page: `open` runs a quick integrity
check) never stops start-up: it is set aside with its WAL as ``pantau.sqlite.corrupt-<time>``
with a warning, and an empty store is created; statuses and last values come back with the
devices' next messages.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from core.sqlite import Database, open_checked

log = logging.getLogger("pantau.status")

SCHEMA = """
CREATE TABLE IF NOT EXISTS device_status (
    device TEXT PRIMARY KEY, status TEXT NOT NULL, since_ns INTEGER NOT NULL,
    cause TEXT NOT NULL, last_seen_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS last_value (
    device TEXT NOT NULL, metric TEXT NOT NULL, ts_ns INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (device, metric)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_history (
    device TEXT NOT NULL, ts_ns INTEGER NOT NULL, status TEXT NOT NULL, cause TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS status_history_by_device ON status_history (device, ts_ns);
"""

STATUSES = ("unknown", "online", "offline")
CAUSES = ("", "lwt", "timeout", "telemetry")  # "" while a device never changed status

#: (device, status, since_ns, cause, last_seen_ns)
StatusRow = tuple[str, str, int, str, int]
#: (device, metric, ts_ns, value)
ValueRow = tuple[str, str, int, float]
#: (device, ts_ns, status, cause)
HistoryRow = tuple[str, int, str, str]


@dataclass(frozen=True, slots=True)
class Transition:
    """One status change: when (ns since the epoch), to what, and why."""

    device: str
    ts_ns: int
    status: str
    cause: str


@dataclass(slots=True)
class Loaded:
    """What a previous run left: current status rows and last values."""

    statuses: list[StatusRow] = field(default_factory=list)
    values: list[ValueRow] = field(default_factory=list)


class StatusDB(Database):
    """One SQLite connection; every method runs on the store's writer thread."""

    what = "status database"

    def open(self, prune_before_ns: int = 0) -> Loaded:
        """Create the file and schema when missing, drop history older than
        ``prune_before_ns``, and return the saved state; a corrupt file is set aside first
        (`core.sqlite.open_checked`)."""
        def setup(conn: sqlite3.Connection) -> Loaded:
            conn.executescript(SCHEMA)
            with conn:
                conn.execute("BEGIN")
                conn.execute("DELETE FROM status_history WHERE ts_ns < ?", (prune_before_ns,))
            return Loaded(
                statuses=conn.execute("SELECT device, status, since_ns, cause, last_seen_ns "
                                      "FROM device_status").fetchall(),
                values=conn.execute("SELECT device, metric, ts_ns, value "
                                    "FROM last_value").fetchall())

        self._conn, loaded = open_checked(
            self.path, setup, log=log, check_same_thread=False,
            lost="device status store (statuses and last values return with the next "
                 "messages)")
        return loaded

    def write(self, statuses: list[StatusRow], values: list[ValueRow],
              history: list[HistoryRow]) -> None:
        """Upsert statuses and last values, append history: one transaction."""
        conn = self.conn
        with conn:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO device_status VALUES (?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE "
                "SET status=excluded.status, since_ns=excluded.since_ns, cause=excluded.cause, "
                "last_seen_ns=excluded.last_seen_ns", statuses)
            conn.executemany(
                "INSERT INTO last_value VALUES (?, ?, ?, ?) ON CONFLICT (device, metric) "
                "DO UPDATE SET ts_ns=excluded.ts_ns, value=excluded.value", values)
            conn.executemany("INSERT INTO status_history VALUES (?, ?, ?, ?)", history)

    def history(self, device: str, limit: int) -> list[HistoryRow]:
        """A device's transitions, newest first."""
        return self.conn.execute(
            "SELECT device, ts_ns, status, cause FROM status_history WHERE device = ? "
            "ORDER BY ts_ns DESC, rowid DESC LIMIT ?", (device, limit)).fetchall()
