"""Downsampled tiers: mean, min, max and count per series per time bucket (1 min and 1 h).

Buckets are aligned to the epoch (UTC; WIB is a whole-hour offset, so hours agree). Each batch
returns, per resolution, one `Tier` row per (series, bucket) it touched, holding the bucket's
aggregate *so far*: the sink writes it with the bucket start as timestamp into the tier's
retention policy (1.x) or bucket (2.x), where a later write of the same bucket overwrites the
earlier one. So the stored row converges to the final aggregate without waiting for a bucket
to close, and a replayed batch changes nothing (readings at or before a series' latest
timestamp are ignored). State: each series' open bucket per resolution.

A series whose device reports less often than a resolution (``interval_s`` > resolution, e.g.
a rain gauge every 300 s and the 1-minute tier) is left out of that tier: each of its buckets
would hold one reading, a copy of the raw point with count 1, so the raw data already is that
tier. (At ``interval_s`` == resolution a bucket can hold two readings of a jittery clock, so
such series stay in.)

Deferred mode (`defer` + `flush`, what `processors.Chain.run` uses for the pipeline): a batch
only has its fresh rows set aside; `flush` (at the pipeline's checkpoint) aggregates everything
set aside since in one pass, giving one row per (series, bucket) touched: the same rows as
`step` per batch coalesced to the latest, at a fraction of the cost. `state` folds what is set
aside into the open buckets first (its rows wait for the next `flush`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from processors.domain.derived import Output, Tier
from processors.domain.segments import (
    F64,
    I32,
    I64,
    IP,
    NEVER,
    B,
    State,
    bounds,
    ends,
    fresh_rows,
    starts,
)

S = 1_000_000_000
FIELDS = ("bucket", "sum", "min", "max", "count")


class Tiers:
    def __init__(self, table: SeriesTable, *, resolutions_s: Sequence[int] = (60, 3600)) -> None:
        if not resolutions_s or min(resolutions_s) <= 0:
            raise ValueError(f"tiers: resolutions must be positive seconds, got {resolutions_s}")
        n = len(table)
        self.resolutions = tuple(int(r) for r in resolutions_s)
        self.last_ts = np.full(n, NEVER, np.int64)
        interval = (np.array([d.interval_s for d in table.devices], np.float64)[
            table.device_index] if n else np.empty(0))
        # per resolution: the series it covers (None: all of them)
        self.covers: dict[int, B | None] = {
            r: None if (interval <= r).all() else interval <= r for r in self.resolutions}
        self.open: dict[int, State] = {
            r: {"bucket": np.full(n, NEVER, np.int64), "sum": np.zeros(n), "min": np.zeros(n),
                "max": np.zeros(n), "count": np.zeros(n, np.int64)} for r in self.resolutions}
        self._deferred: list[tuple[I32, I64, F64]] = []  # fresh rows set aside by `defer`
        self._ready: list[Tier] = []  # rows folded by `state` before the next `flush`

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        rows = fresh_rows(batch, self.last_ts, order)
        if len(rows) == 0:
            return Output(batch)
        s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        first, last = bounds(s)
        self.last_ts[s[last]] = t[last]
        return Output(batch, tiers=tuple(self._tier(r, s, t, v, first, last)
                                         for r in self.resolutions))

    def defer(self, batch: TelemetryBatch, order: IP | None = None) -> TelemetryBatch:
        """Set aside the batch's fresh rows for the next `flush` (see the module docstring)."""
        rows = fresh_rows(batch, self.last_ts, order)
        if len(rows):
            s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
            last = np.empty(len(s), bool)
            last[:-1], last[-1] = s[1:] != s[:-1], True
            self.last_ts[s[last]] = t[last]
            self._deferred.append((s, t, v))
        return batch

    def flush(self) -> tuple[Tier, ...]:
        """The tier rows of every bucket touched since the last flush (running aggregates)."""
        self._fold()
        ready, self._ready = self._ready, []
        return tuple(ready)

    def _fold(self) -> None:
        if not self._deferred:
            return
        parts, self._deferred = self._deferred, []
        s = np.concatenate([p[0] for p in parts])
        # each batch's rows of a series are newer than the batch before's: a stable sort by
        # series alone leaves every series in time order
        order = np.argsort(s, kind="stable")
        s = s[order]
        t = np.concatenate([p[1] for p in parts])[order]
        v = np.concatenate([p[2] for p in parts])[order]
        first, last = bounds(s)
        self._ready += [self._tier(r, s, t, v, first, last) for r in self.resolutions]

    def _tier(self, res: int, s: I32, t: I64, v: F64, first: B, last: B) -> Tier:
        covers = self.covers[res]
        if covers is not None:  # leave out the series reporting less often than res
            keep = covers[s]
            if not keep.all():
                s, t, v = s[keep], t[keep], v[keep]
                first = starts(s)
                last = ends(s)
        width = res * S
        bucket = t - t % width
        new = first.copy()
        new[1:] |= bucket[1:] != bucket[:-1]
        if new.all():  # one reading per (series, bucket), as from devices reporting slowly
            gser, gb, gfirst, glast = s, bucket, first, last
            total, vmin, vmax = v.copy(), v.copy(), v.copy()
            count = np.ones(len(s), np.int64)
        else:
            gs = np.flatnonzero(new)
            gser, gb, gfirst = s[gs], bucket[gs], first[gs]
            glast = ends(gser)
            total = np.add.reduceat(v, gs)
            vmin, vmax = np.minimum.reduceat(v, gs), np.maximum.reduceat(v, gs)
            count = np.diff(np.append(gs, len(s))).astype(np.int64)
        st = self.open[res]
        # The first bucket of a series in this batch may continue the one left open before.
        head = np.flatnonzero(gfirst)
        cont = head[st["bucket"][gser[head]] == gb[head]]
        if len(cont):
            c = gser[cont]
            total[cont] += st["sum"][c]
            vmin[cont] = np.minimum(vmin[cont], st["min"][c])
            vmax[cont] = np.maximum(vmax[cont], st["max"][c])
            count[cont] += st["count"][c]
        sl = gser[glast]
        for name, col in zip(FIELDS, (gb, total, vmin, vmax, count), strict=True):
            st[name][sl] = col[glast]
        return Tier(res, gb, gser, total / count, vmin, vmax, count)

    def state(self) -> State:
        self._fold()
        out: State = {"last_ts": self.last_ts}
        for r, st in self.open.items():
            out.update({f"{r}s_{k}": a for k, a in st.items()})
        return out

    def restore(self, state: State) -> None:
        self._deferred, self._ready = [], []
        self.last_ts = np.asarray(state["last_ts"], np.int64).copy()
        for r, st in self.open.items():
            for k in FIELDS:
                st[k] = np.asarray(state[f"{r}s_{k}"], st[k].dtype).copy()
