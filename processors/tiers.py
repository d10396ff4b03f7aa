"""Downsampled tiers: mean, min, max and count per series per time bucket (1 min and 1 h).

Buckets are aligned to the epoch (UTC; WIB is a whole-hour offset, so hours agree). Each batch
returns, per resolution, one `Tier` row per (series, bucket) it touched, holding the bucket's
aggregate *so far*: the sink writes it with the bucket start as timestamp into the tier's
retention policy (1.x) or bucket (2.x), where a later write of the same bucket overwrites the
earlier one. So the stored row converges to the final aggregate without waiting for a bucket
to close, and a replayed batch changes nothing (readings at or before a series' latest
timestamp are ignored). State: each series' open bucket per resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from processors.domain.derived import Output, Tier
from processors.domain.segments import F64, I32, I64, NEVER, State, ends, fresh_rows, starts

S = 1_000_000_000
FIELDS = ("bucket", "sum", "min", "max", "count")


class Tiers:
    def __init__(self, table: SeriesTable, *, resolutions_s: Sequence[int] = (60, 3600)) -> None:
        if not resolutions_s or min(resolutions_s) <= 0:
            raise ValueError(f"tiers: resolutions must be positive seconds, got {resolutions_s}")
        n = len(table)
        self.resolutions = tuple(int(r) for r in resolutions_s)
        self.last_ts = np.full(n, NEVER, np.int64)
        self.open: dict[int, State] = {
            r: {"bucket": np.full(n, NEVER, np.int64), "sum": np.zeros(n), "min": np.zeros(n),
                "max": np.zeros(n), "count": np.zeros(n, np.int64)} for r in self.resolutions}

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def step(self, batch: TelemetryBatch) -> Output:
        rows = fresh_rows(batch, self.last_ts)
        if len(rows) == 0:
            return Output(batch)
        s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
        last = ends(s)
        self.last_ts[s[last]] = t[last]
        return Output(batch, tiers=tuple(self._tier(r, s, t, v) for r in self.resolutions))

    def _tier(self, res: int, s: I32, t: I64, v: F64) -> Tier:
        width = res * S
        bucket = t // width * width
        new = starts(s)
        new[1:] |= bucket[1:] != bucket[:-1]
        gs = np.flatnonzero(new)
        gser, gb = s[gs], bucket[gs]
        total = np.add.reduceat(v, gs)
        vmin, vmax = np.minimum.reduceat(v, gs), np.maximum.reduceat(v, gs)
        count = np.diff(np.append(gs, len(s))).astype(np.int64)
        st = self.open[res]
        # The first bucket of a series in this batch may continue the one left open before.
        cont = starts(s)[gs] & (st["bucket"][gser] == gb)
        c = gser[cont]
        total[cont] += st["sum"][c]
        vmin[cont] = np.minimum(vmin[cont], st["min"][c])
        vmax[cont] = np.maximum(vmax[cont], st["max"][c])
        count[cont] += st["count"][c]
        lg = ends(gser)
        sl = gser[lg]
        for name, col in zip(FIELDS, (gb, total, vmin, vmax, count), strict=True):
            st[name][sl] = col[lg]
        return Tier(res, gb, gser, total / count, vmin, vmax, count)

    def state(self) -> State:
        out: State = {"last_ts": self.last_ts}
        for r, st in self.open.items():
            out.update({f"{r}s_{k}": a for k, a in st.items()})
        return out

    def restore(self, state: State) -> None:
        self.last_ts = np.asarray(state["last_ts"], np.int64).copy()
        for r, st in self.open.items():
            for k in FIELDS:
                st[k] = np.asarray(state[f"{r}s_{k}"], st[k].dtype).copy()
