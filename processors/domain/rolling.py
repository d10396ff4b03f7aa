"""Time-window aggregates per series over a pruned history of recent readings.

`History` keeps, for every series, the readings within ``horizon`` of that series' latest
reading, as flat arrays sorted by (series, ts). Each batch is merged into it; aggregates over
``(t - width, t]`` for every new row then come from prefix sums (mean, least-squares slope) and a
sparse table (min, max), so a window costs O(1) per row whatever its length. Results are exactly
those of the naive per-series definition, however the readings were split into batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.state import State
from processors.domain.segments import F64, I32, I64, IP, NEVER, ends, starts


@dataclass(frozen=True, slots=True)
class Span:
    """The merged history (sorted by series, ts) and where the batch's new rows sit in it."""

    series: I32
    ts_ns: I64
    value: F64
    pos: IP

    def lower(self, width_ns: I64 | int) -> IP:
        """Per new row: index of the first reading of its series with ts > ts_row - width."""
        return self._lower(self.pos, self.ts_ns[self.pos] - width_ns)

    def lower_many(self, widths_ns: I64) -> IP:
        """`lower` for several scalar widths at once: shape (new rows, len(widths_ns)), column
        j for ``widths_ns[j]`` (one search over a key built once, not one per width)."""
        w = np.asarray(widths_ns, np.int64)
        q_t = (self.ts_ns[self.pos][:, None] - w[None, :]).ravel()
        return self._lower(np.repeat(self.pos, len(w)), q_t).reshape(len(self.pos), len(w))

    def _lower(self, at: IP, q_t: I64) -> IP:
        """Per query: the first reading with ts > ``q_t`` in the series of reading ``at``."""
        if len(self.series) == 0 or len(at) == 0:
            return np.empty(len(at), np.intp)
        t0 = min(int(self.ts_ns.min()), int(np.min(q_t)))
        span = int(self.ts_ns.max()) - t0 + 2
        seg = np.cumsum(starts(self.series)) - 1
        if (int(seg[-1]) + 1) * span < 2**62:  # one sortable int64 key: (segment, time)
            key = seg * span + (self.ts_ns - t0)
            qkey = seg[at] * span + (q_t - t0)
            return np.searchsorted(key, qkey, side="right").astype(np.intp)
        n, q = len(self.series), len(at)  # keys too wide: merge by lexsort
        order = np.lexsort((np.r_[np.zeros(n, np.int8), np.ones(q, np.int8)],
                            np.r_[self.ts_ns, q_t], np.r_[self.series, self.series[at]]))
        data_before = np.cumsum(order < n)
        lo = np.empty(q, dtype=np.intp)
        lo[order[order >= n] - n] = data_before[order >= n]
        return lo

    def sum(self, x: F64, lo: IP) -> F64:
        cs = np.concatenate([[0.0], np.cumsum(x)])
        out: F64 = cs[self.pos + 1] - cs[lo]
        return out

    def mean(self, lo: IP) -> F64:
        return self.sum(self.value, lo) / (self.pos + 1 - lo)

    def minmax(self, lo: IP) -> tuple[F64, F64]:
        """Min and max of value[lo..pos] per new row (sparse table, log2(longest) levels)."""
        hi = self.pos
        length = hi - lo + 1
        k = np.floor(np.log2(length)).astype(np.intp)
        mins, maxs = [self.value], [self.value]
        for j in range(1, int(k.max(initial=0)) + 1):
            h = 1 << (j - 1)
            mins.append(np.minimum(mins[-1][:-h], mins[-1][h:]))
            maxs.append(np.maximum(maxs[-1][:-h], maxs[-1][h:]))
        vmin = np.empty(len(hi))
        vmax = np.empty(len(hi))
        for j in np.unique(k):
            m = k == j
            a, b = lo[m], hi[m] - (1 << int(j)) + 1
            vmin[m] = np.minimum(mins[j][a], mins[j][b])
            vmax[m] = np.maximum(maxs[j][a], maxs[j][b])
        return vmin, vmax

    def slope_per_s(self, lo: IP) -> tuple[F64, F64, F64]:
        """Least-squares slope (value units per second), time span (s) and number of readings
        of each window; a NaN value in the history is a reading left out of the fit."""
        # Seconds since the series' first retained reading: small numbers keep the sums exact.
        first = np.ones(len(self.series), dtype=bool)
        first[1:] = self.series[1:] != self.series[:-1]
        idx0 = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
        w = np.isfinite(self.value).astype(np.float64)
        t = (self.ts_ns - self.ts_ns[idx0]) / 1e9 * w
        v = np.where(w > 0, self.value, 0.0)
        n = self.sum(w, lo)
        st, sv = self.sum(t, lo), self.sum(v, lo)
        stt, stv = self.sum(t * t, lo), self.sum(t * v, lo)
        den = n * stt - st * st
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = np.where(den > 1e-12 * np.maximum(n * stt, 1.0), (n * stv - st * sv) / den,
                             np.nan)
        return slope, (self.ts_ns[self.pos] - self.ts_ns[lo]) / 1e9, n


class History:
    """Recent readings of every series; ``horizon_ns`` (scalar or per series) bounds what is kept.

    ``add`` must receive rows sorted by (series, ts), each strictly newer than the series' last
    reading (`processors.domain.segments.fresh_rows` guarantees both).
    """

    def __init__(self, n_series: int, horizon_ns: int | I64) -> None:
        self.horizon = np.broadcast_to(np.asarray(horizon_ns, np.int64), (n_series,)).copy()
        self.series = np.empty(0, np.int32)
        self.ts_ns = np.empty(0, np.int64)
        self.value = np.empty(0, np.float64)
        self.last_ts = np.full(n_series, NEVER, dtype=np.int64)

    def add(self, series: I32, ts_ns: I64, value: F64) -> Span:
        # History and rows are each sorted by (series, ts) and every row is newer than its
        # series' history, so the merge is a scatter by position, not a sort.
        at_new = np.searchsorted(self.series, series, side="right") + np.arange(len(series))
        at_old = np.arange(len(self.series)) + np.searchsorted(series, self.series, side="left")
        size = len(self.series) + len(series)
        s, t, v = np.empty(size, np.int32), np.empty(size, np.int64), np.empty(size)
        s[at_old], t[at_old], v[at_old] = self.series, self.ts_ns, self.value
        s[at_new], t[at_new], v[at_new] = series, ts_ns, value
        span = Span(s, t, v, at_new.astype(np.intp))
        last = ends(series)
        self.last_ts[series[last]] = ts_ns[last]
        keep = span.ts_ns > self.last_ts[span.series] - self.horizon[span.series]
        self.series, self.ts_ns, self.value = span.series[keep], span.ts_ns[keep], span.value[keep]
        return span

    def state(self, prefix: str) -> State:
        return {f"{prefix}series": self.series, f"{prefix}ts_ns": self.ts_ns,
                f"{prefix}value": self.value, f"{prefix}last_ts": self.last_ts}

    def restore(self, state: State, prefix: str) -> None:
        self.series = np.asarray(state[f"{prefix}series"], np.int32).copy()
        self.ts_ns = np.asarray(state[f"{prefix}ts_ns"], np.int64).copy()
        self.value = np.asarray(state[f"{prefix}value"], np.float64).copy()
        self.last_ts = np.asarray(state[f"{prefix}last_ts"], np.int64).copy()
