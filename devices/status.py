"""Runtime status per device: online/offline, last seen, last values, and the history of changes.

Sources, all on the event loop thread:

- `StatusStore.on_status` gets LWT messages (``<prefix>/<site>/<device>/status``, payload
  ``online`` or ``offline``): a change is a transition with cause ``lwt``.
- `StatusStore.on_stored` gets every batch after it was written, with the receive time of each
  message: per device the newest receive time is its *last seen*, per series the reading with
  the newest device timestamp is its *last value* (numpy over the whole batch). A device not
  online is brought online (cause ``telemetry``) only by a message received after its last
  transition, so telemetry that was still in flight when the LWT came does not revive it.
- `StatusStore.sweep` marks offline (cause ``timeout``) every device not heard for
  ``timeout_factor`` (2) x its ``interval_s``, counting from the later of its last seen, the
  moment it came online, and the moment the store began listening (open, or the end of a hold).

Time is the injected ``clock`` (ns since the epoch, the pipeline's clock). State lives in numpy
arrays; SQLite (`devices.status_db`, ``<state_dir>/pantau.sqlite``) is written from one writer
thread by `flush`, which sends only what changed since the last flush in one transaction, so
the cost per flush is bounded by the number of devices and series, never by message count.
On open, the saved state is loaded, so a restart keeps statuses, last values and history. The
arrays themselves, and their conversion to and from rows, are `devices.status_arrays`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

import numpy as np

from core.stored import Stored
from devices import topics
from devices.series import SeriesTable
from devices.status_arrays import (
    LWT,
    NEVER,
    OFFLINE,
    ONLINE,
    TELEMETRY,
    TIMEOUT,
    UNKNOWN,
    DeviceState,
    StatusArrays,
)
from devices.status_db import CAUSES, STATUSES, HistoryRow, StatusDB, Transition

log = logging.getLogger("pantau.status")
__all__ = ["CAUSES", "STATUSES", "DeviceState", "StatusListener", "StatusStore", "Transition"]

R = TypeVar("R")


class StatusListener(Protocol):
    """Told of every status change (`Transition`: online/offline, with its cause and time), on
    the event loop thread, in order, as the store makes it; must return quickly and should not
    raise (an exception is logged and the store goes on)."""

    def on_transition(self, change: Transition) -> None: ...


class StatusStore:
    """`open` then `close` (or ``async with``); the sync methods are for the event loop thread
    only, the async ones may run concurrently (their SQLite work is queued on one thread)."""

    def __init__(self, path: str | Path, table: SeriesTable, *,
                 clock: Callable[[], int] = time.time_ns, timeout_factor: float = 2.0,
                 history_days: float = 90.0, max_pending_history: int = 100_000) -> None:
        self.table, self._clock, self._factor = table, clock, timeout_factor
        self._db = StatusDB(path)
        self._history_ns = int(history_days * 86400e9)
        self._a = StatusArrays(table)
        self._pending: deque[HistoryRow] = deque(maxlen=max_pending_history)
        self._listening_ns = 0
        self._exec: ThreadPoolExecutor | None = None
        self._listeners: list[StatusListener] = []

    @property
    def path(self) -> Path:
        return self._db.path

    def sweep_period_s(self) -> float:
        """How often to `sweep`: an eighth of the shortest timeout, within [0.2, 5] s."""
        a = self._a
        shortest = float(a.interval_ns.min()) / 1e9 * self._factor if len(a.seen) else 8
        return min(5.0, max(0.2, shortest / 8))

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Start the writer thread, open (or create) the file and load the saved state."""
        self._exec = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pantau-status")
        now = self._clock()
        self._listening_ns = now
        self._a.load(await self._run(self._db.open, now - self._history_ns))

    async def close(self) -> None:
        """Flush what is pending, close the file and stop the writer thread."""
        try:
            if self._exec is not None:
                await self.flush()
                await self._run(self._db.close)
        finally:
            if self._exec is not None:
                self._exec.shutdown(wait=True)
                self._exec = None

    async def __aenter__(self) -> StatusStore:
        await self.open()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` on the writer thread (the only thread that touches SQLite)."""
        if self._exec is None:
            raise RuntimeError("the status store is not open (use `async with`)")
        return await asyncio.get_running_loop().run_in_executor(self._exec, fn, *args)

    # -- inputs (event loop thread) ----------------------------------------------------------
    def _set(self, i: int, status: int, cause: int, at: int) -> None:
        self._a.set(i, status, cause, at)
        if len(self._pending) == self._pending.maxlen:  # the database has been failing long
            log.warning("status history backlog full: dropping the oldest pending transition")
        change = Transition(self.table.devices[i].id, at, STATUSES[status], CAUSES[cause])
        self._pending.append((change.device, at, change.status, change.cause))
        for listener in self._listeners:
            try:
                listener.on_transition(change)
            except Exception:  # a listener's bug must not stop the status store
                log.exception("status listener %s failed on %s", type(listener).__name__, change)

    def subscribe(self, listener: StatusListener) -> None:
        """Tell ``listener`` of every status change from now on."""
        self._listeners.append(listener)

    def on_status(self, topic: str, payload: bytes) -> None:
        """An LWT/status message; unknown devices and payloads other than online/offline are
        ignored."""
        i = self._a.index.get(topics.device_of(topic)) if topics.is_status(topic) else None
        said = topics.parse_status(payload)
        new = ONLINE if said == topics.ONLINE else OFFLINE if said == topics.OFFLINE else UNKNOWN
        if i is not None and new != UNKNOWN and new != self._a.status[i]:
            self._set(i, new, LWT, self._clock())

    def on_stored(self, stored: Stored) -> None:
        """A batch was written (`core.stored.StoredListener`); ``stored.received_ns[m]`` is
        when message ``m`` (``batch.origin``) arrived. Rows of any status count as heard; only
        stored (OK) rows become last values."""
        a, batch, received_ns = self._a, stored.batch, stored.received_ns
        series, n_series = batch.series, len(self.table)
        known = (series >= 0) & (series < n_series)
        heard = known & (batch.origin >= 0)
        if heard.any():
            rec = received_ns[batch.origin[heard]]
            newest = np.full(len(a.seen), NEVER, dtype=np.int64)
            np.maximum.at(newest, self.table.device_index[series[heard]], rec)
            a.dirty_dev |= newest > a.seen
            np.maximum(a.seen, newest, out=a.seen)
            revive = (newest > NEVER) & (a.status != ONLINE) & (newest > a.since)
            for i in np.flatnonzero(revive).tolist():
                self._set(i, ONLINE, TELEMETRY, int(newest[i]))
        ok = known & batch.ok
        a.keep_newest(series[ok], batch.ts_ns[ok], batch.value[ok])

    def sweep(self, *, hold: bool = False) -> int:
        """Mark offline (cause ``timeout``) every device silent for too long; return how many.
        ``hold=True`` (e.g. while the database refuses writes, so nothing counts as heard)
        marks nobody and restarts every device's grace period."""
        now = self._clock()
        if hold:
            self._listening_ns = now
            return 0
        a = self._a
        ref = np.maximum(a.seen, self._listening_ns)
        ref = np.maximum(ref, np.where(a.status == ONLINE, a.since, NEVER))
        late = (a.status != OFFLINE) & (now - ref > a.interval_ns * self._factor)
        for i in np.flatnonzero(late).tolist():
            self._set(i, OFFLINE, TIMEOUT, now)
        return int(np.count_nonzero(late))

    # -- persistence -------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what changed since the last flush, in one transaction on the writer thread.
        On a database error the changes stay pending for the next flush (and it raises)."""
        changes = self._a.take_changes()
        history = list(self._pending)
        if not (changes.statuses or changes.values or history):
            return
        self._pending.clear()
        try:
            await self._run(self._db.write, changes.statuses, changes.values, history)
        except BaseException:
            self._a.unsaved(changes)
            self._pending.extendleft(reversed(history))
            raise

    async def run(self, hold: Callable[[], bool] = lambda: False) -> None:
        """Sweep and flush every `sweep_period_s` until cancelled (then the caller closes)."""
        while True:
            await asyncio.sleep(self.sweep_period_s())
            self.sweep(hold=hold())
            try:
                await self.flush()
            except Exception as e:  # keep serving from memory; retried next period
                log.error("cannot write device status to %s: %s", self.path, e)

    # -- reads -------------------------------------------------------------------------------
    def state(self, device_id: str) -> DeviceState | None:
        i = self._a.index.get(device_id)
        return None if i is None else self._a.state(i)

    def status(self, device_id: str) -> str:
        i = self._a.index.get(device_id)
        return "unknown" if i is None else STATUSES[self._a.status[i]]

    async def history(self, device_id: str, limit: int = 100) -> list[Transition]:
        """The device's transitions, newest first (pending ones are flushed first)."""
        await self.flush()
        rows = await self._run(self._db.history, device_id, limit)
        return [Transition(*r) for r in rows]
