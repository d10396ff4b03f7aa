"""`CadenceWatch`: which devices report much faster than their registry ``interval_s``.

A firmware bug, a misconfigured logger or an attacker with one device's credentials can send
readings far more often than the registry promises. Pantau still stores every one of them
(they are the device's data), and its stateful processors keep state per time bucket, so the
extra readings cost O(1) each (`processors.domain.rolling`); this listener makes such a device
*visible*: per device, the reading sets (distinct timestamps) that came less than
``fraction`` x ``interval_s`` after the device's previous one are counted on ``/metrics``
(``pantau_device_fast_readings_total{device=...}``), and one log line per minute names the
devices that did so since the last line, the fastest first.

A `core.stored.StoredListener`: called by the pipeline's single writer after each write, with
the pipeline's clock as data (``Stored.now_ns``); not for concurrent use. State: one timestamp
per device.
"""

from __future__ import annotations

import logging

import numpy as np

from core.metrics import Metrics
from core.stored import Stored
from devices.series import SeriesTable

HELP: dict[str, tuple[str, str]] = {
    "pantau_device_fast_readings_total": (
        "counter", "Reading sets (distinct timestamps) a device sent sooner than half its "
        "registry interval after its previous one: a device reporting much faster than "
        "promised (stored all the same), by device."),
}
NEVER = np.iinfo(np.int64).min
LOG_EVERY_NS = 60_000_000_000
log = logging.getLogger("pantau.cadence")


class CadenceWatch:
    def __init__(self, table: SeriesTable, metrics: Metrics, *, fraction: float = 0.5) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"cadence: fraction must be in (0, 1], not {fraction}")
        metrics.describe(HELP)
        self._m, self._table = metrics, table
        n = len(table.devices)
        self._raw_device = table.device_index[:table.raw].astype(np.intp)
        self.early_ns = (np.array([d.interval_s for d in table.devices], np.float64)
                         * fraction * 1e9).astype(np.int64)
        self.last_ts = np.full(n, NEVER, np.int64)
        self.fast = np.zeros(n, np.int64)  # per device, since start
        self._since_log = np.zeros(n, np.int64)
        self._logged_ns = NEVER

    def on_stored(self, stored: Stored) -> None:
        b = stored.readings
        if len(b) == 0:
            return
        dev = self._raw_device[b.series]
        order = np.lexsort((b.ts_ns, dev))
        dev, ts = dev[order], b.ts_ns[order]
        new = np.ones(len(dev), bool)  # one reading set per (device, timestamp)
        new[1:] = (dev[1:] != dev[:-1]) | (ts[1:] != ts[:-1])
        dev, ts = dev[new], ts[new]
        first = np.ones(len(dev), bool)
        first[1:] = dev[1:] != dev[:-1]
        prev = np.empty_like(ts)
        prev[1:] = ts[:-1]
        prev[first] = self.last_ts[dev[first]]
        later = ts > prev  # a redelivery or a late reading is not a fast one
        early = later & (prev != NEVER) & (ts - prev < self.early_ns[dev])
        last = np.ones(len(dev), bool)
        last[:-1] = first[1:]
        self.last_ts[dev[last]] = np.maximum(self.last_ts[dev[last]], ts[last])
        if early.any():
            counts = np.bincount(dev[early], minlength=len(self.fast))
            self.fast += counts
            self._since_log += counts
            for d in np.flatnonzero(counts).tolist():  # per fast device, not per reading
                self._m.counter("pantau_device_fast_readings_total",
                                device=self._table.devices[d].id).value = int(self.fast[d])
        self._maybe_log(stored.now_ns)

    def _maybe_log(self, now_ns: int) -> None:
        if not self._since_log.any() or now_ns - self._logged_ns < LOG_EVERY_NS:
            return
        self._logged_ns = now_ns
        top = np.argsort(-self._since_log)[:5]
        top = top[self._since_log[top] > 0]
        named = ", ".join(f"{self._table.devices[d].id} ({self._since_log[d]}, interval "
                          f"{self._table.devices[d].interval_s:g} s)" for d in top.tolist())
        log.warning("%d device(s) report much faster than their registry interval (reading sets "
                    "sooner than half the interval since the last line): %s; stored all the same",
                    int(np.count_nonzero(self._since_log)), named)
        self._since_log[:] = 0
