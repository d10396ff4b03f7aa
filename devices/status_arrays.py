"""What the device status store remembers, as numpy arrays, and the rows that save and load it.

Per device: status, cause, since (when the status last changed) and last seen (the newest
receive time); per series (derived ones included): the newest stored value and its device
timestamp. Dirty marks say what changed since the last `StatusArrays.take_changes`, so a flush
writes only that (`devices.status_db`). The rules that decide a status live in
`devices.status`; this module only keeps and converts. Times are ns since the epoch, `NEVER`
when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.series import SeriesTable
from devices.status_db import CAUSES, STATUSES, Loaded, StatusRow, ValueRow

UNKNOWN, ONLINE, OFFLINE = 0, 1, 2  # indexes into STATUSES
LWT, TIMEOUT, TELEMETRY = 1, 2, 3   # indexes into CAUSES
NEVER = np.iinfo(np.int64).min
Indexes = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device now; times are ns since the epoch or None. ``values``: metric -> (value,
    device timestamp) of the newest stored reading."""

    status: str
    since_ns: int | None
    cause: str
    last_seen_ns: int | None
    values: dict[str, tuple[float, int]]


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since the last `StatusArrays.take_changes`: the indexes (to mark dirty
    again when the write fails) and the rows to write."""

    devices: Indexes
    series: Indexes
    statuses: list[StatusRow]
    values: list[ValueRow]


class StatusArrays:
    """Arrays indexed by device (``table.devices``) and by series (``table``); the public
    arrays are read and written by `devices.status.StatusStore` on one thread."""

    def __init__(self, table: SeriesTable) -> None:
        self.table = table
        self.index = {d.id: i for i, d in enumerate(table.devices)}
        # (device, metric) -> series, derived series included (they are not in table.lookup)
        self._sid = {(table.devices[int(di)].id, m): s
                     for s, (di, m) in enumerate(zip(table.device_index, table.metric,
                                                     strict=True))}
        self._dev_sids: list[list[int]] = [[] for _ in table.devices]
        for sid, di in enumerate(table.device_index.tolist()):
            self._dev_sids[di].append(sid)
        n, s = len(table.devices), len(table)
        self.interval_ns = np.array([d.interval_s * 1e9 for d in table.devices], dtype=np.int64)
        self.status = np.zeros(n, dtype=np.int8)
        self.cause = np.zeros(n, dtype=np.int8)
        self.since = np.full(n, NEVER, dtype=np.int64)
        self.seen = np.full(n, NEVER, dtype=np.int64)
        self.dirty_dev = np.zeros(n, dtype=bool)
        self._val_ts = np.full(s, NEVER, dtype=np.int64)
        self._val = np.full(s, np.nan)
        self._dirty_series = np.zeros(s, dtype=bool)

    def load(self, loaded: Loaded) -> None:
        """Take what a previous run saved; rows of unknown devices, metrics, statuses or
        causes (the registry changed since) are ignored."""
        for dev, status, since, cause, seen in loaded.statuses:
            i = self.index.get(dev)
            if i is not None and status in STATUSES and cause in CAUSES:
                self.status[i], self.cause[i] = STATUSES.index(status), CAUSES.index(cause)
                self.since[i], self.seen[i] = since, seen
        for dev, metric, ts, value in loaded.values:
            sid = self._sid.get((dev, metric))
            if sid is not None:
                self._val_ts[sid], self._val[sid] = ts, value

    def set(self, i: int, status: int, cause: int, at: int) -> None:
        self.status[i], self.cause[i], self.since[i] = status, cause, at
        self.dirty_dev[i] = True

    def keep_newest(self, series: npt.NDArray[np.int32], ts_ns: npt.NDArray[np.int64],
                    value: npt.NDArray[np.float64]) -> None:
        """Per series, keep the reading with the newest device timestamp (among these and
        the one kept before); ties go to the later row."""
        if not len(series):
            return
        order = np.lexsort((ts_ns, series))
        s_sorted = series[order]
        last = order[np.append(s_sorted[1:] != s_sorted[:-1], True)]
        sid, ts_last = series[last], ts_ns[last]
        newer = ts_last >= self._val_ts[sid]
        sid = sid[newer]
        self._val_ts[sid], self._val[sid] = ts_last[newer], value[last[newer]]
        self._dirty_series[sid] = True

    def take_changes(self) -> Changes:
        """The rows changed since the last call, and clear the dirty marks."""
        devs = np.flatnonzero(self.dirty_dev)
        sids = np.flatnonzero(self._dirty_series)
        self.dirty_dev[devs] = False
        self._dirty_series[sids] = False
        ids = [d.id for d in self.table.devices]
        statuses = [(ids[i], STATUSES[self.status[i]], int(self.since[i]),
                     CAUSES[self.cause[i]], int(self.seen[i])) for i in devs.tolist()]
        di = self.table.device_index
        values = [(ids[di[s]], self.table.metric[s], int(self._val_ts[s]), float(self._val[s]))
                  for s in sids.tolist()]
        return Changes(devs, sids, statuses, values)

    def unsaved(self, changes: Changes) -> None:
        """``changes`` were not written: mark them dirty again for the next flush."""
        self.dirty_dev[changes.devices] = True
        self._dirty_series[changes.series] = True

    def state(self, i: int) -> DeviceState:
        values = {self.table.metric[s]: (float(self._val[s]), int(self._val_ts[s]))
                  for s in self._dev_sids[i] if self._val_ts[s] != NEVER}
        since, seen = int(self.since[i]), int(self.seen[i])
        return DeviceState(STATUSES[self.status[i]], None if since == NEVER else since,
                           CAUSES[self.cause[i]], None if seen == NEVER else seen, values)
