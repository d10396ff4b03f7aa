"""Anomaly score per series: z of each reading against the EWMA mean and variance before it.

With weight ``alpha`` per reading: ``mean_k = mean_{k-1} + alpha * d`` and
``var_k = (1 - alpha) * (var_{k-1} + alpha * d²)`` where ``d = x_k - mean_{k-1}``; the score is
``z = d / sqrt(var_{k-1})``, NaN until the series has seen ``warmup`` readings or while its
standard deviation is below 1e-9 of its mean (zero up to float error). ``|z| >= threshold``
sets `FLAG_ANOMALY`; z is derived as ``<metric>_zscore``.
The recurrences are solved for the whole batch with affine prefix scans, not a loop.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from core.batch import FLAG_ANOMALY, TelemetryBatch
from core.state import State
from devices.series import DerivedMetric, SeriesTable
from processors.domain.derived import Output, derived
from processors.domain.segments import (
    F64,
    IP,
    NEVER,
    affine_scan,
    ends,
    fresh_rows,
    previous,
    rank,
    starts,
)

__all__ = ["FLAG_ANOMALY", "Anomaly"]


class Anomaly:
    def __init__(self, table: SeriesTable, *, alpha: float = 0.05, threshold: float = 4.0,
                 warmup: int = 20, metrics: Collection[str] | None = None) -> None:
        if not 0 < alpha < 1 or threshold <= 0 or warmup < 2:
            raise ValueError(f"anomaly: need 0 < alpha < 1, threshold > 0, warmup >= 2; got "
                             f"alpha={alpha}, threshold={threshold}, warmup={warmup}")
        n = len(table)
        self.alpha, self.threshold, self.warmup = alpha, threshold, warmup
        self.selected = np.array([metrics is None or m in metrics for m in table.metric], bool)
        self.interval_s = table.interval_s()
        self.mean = np.full(n, np.nan)
        self.var = np.zeros(n)
        self.count = np.zeros(n, np.int64)
        self.last_ts = np.full(n, NEVER, np.int64)

    def derives(self) -> list[DerivedMetric]:
        return [DerivedMetric("zscore", True, self.selected)]

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs: the warm-up, or the readings that carry
        95 % of the EWMA's weight (3 / alpha), whichever is longer, at the device's interval."""
        readings = max(self.warmup, int(np.ceil(3 / self.alpha)))
        return np.where(self.selected, readings * self.interval_s, 0.0)

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.last_ts, order, self.selected)
        if len(rows) == 0:
            return Output(batch)
        s, t, x = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        a, first = self.alpha, starts(s)
        # A series' very first reading seeds its mean, so its own deviation is 0.
        m0 = np.where(self.count[s] > 0, self.mean[s], x)
        c = np.where(first, 0.0, 1.0 - a)
        mean = affine_scan(c, np.where(first, (1 - a) * m0 + a * x, a * x))
        carried_mean = np.where(self.count > 0, self.mean, 0.0)
        carried_mean[s[first]] = m0[first]
        mean_prev = previous(mean, s, carried_mean)
        d = x - mean_prev
        var = affine_scan(c, (1 - a) * (np.where(first, self.var[s], 0.0) + a * d * d))
        var_prev = previous(var, s, self.var)
        seen = self.count[s] + rank(s)
        with np.errstate(invalid="ignore", divide="ignore"):
            # Below float noise (a flat series scanned in a different order) the spread is 0.
            sd = np.sqrt(var_prev)
            spread = sd > 1e-9 * np.maximum(1.0, np.abs(mean_prev))
            z = np.where((seen >= self.warmup) & spread, d / sd, np.nan)

        last = ends(s)
        sl = s[last]
        self.mean[sl], self.var[sl], self.last_ts[sl] = mean[last], var[last], t[last]
        self.count[sl] = seen[last] + 1
        hit = np.zeros(len(batch), bool)
        hit[rows[np.abs(np.nan_to_num(z)) >= self.threshold]] = True
        return Output(batch.with_flags(hit, FLAG_ANOMALY), (derived("zscore", t, s, z),))

    def state(self) -> State:
        return {"mean": self.mean, "var": self.var, "count": self.count, "last_ts": self.last_ts}

    def restore(self, state: State) -> None:
        for k in ("mean", "var", "count", "last_ts"):
            setattr(self, k, np.asarray(state[k], getattr(self, k).dtype).copy())
