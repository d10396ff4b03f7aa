"""Downsampled tiers: mean, min, max and count per series per time bucket (1 min and 1 h).

Buckets are aligned to the epoch (UTC; WIB is a whole-hour offset, so hours agree). A `Tier`
row holds a bucket's aggregate so far; the sink writes it with the bucket start as timestamp
into the tier's retention policy (1.x) or bucket (2.x), where a later write of the same bucket
overwrites the earlier one. Readings at or before a series' latest timestamp are ignored, so a
replayed batch changes nothing. State per resolution: each series' open (newest) bucket, the
time of its newest reading and of the newest reading already written (``shown``).

Which rows are emitted, so that a tier costs a fraction of the raw data, not a copy of it:

- a bucket that closes (its series reports in a later bucket) is emitted once, final, unless
  it was already written with every reading;
- an open bucket is rewritten only when the data clock (the newest device timestamp seen) has
  moved ``resolution / refresh`` past its last write (default 6: the 1-hour row of the
  current hour is at most 10 minutes behind the raw data, the 1-minute row 10 s). Emitting it
  with every reading would write, for a station reporting each minute, one 1-hour row per
  reading: as many rows as the raw data, four fields each.
- `flush` with ``all_open`` (a clean stop) writes every open bucket not yet written in full.

A tier only covers the series whose device reports more often than its resolution
(``interval_s`` < resolution). The others (a rain gauge every 300 s, a river gauge every 60 s,
for the 1-minute tier) would put one reading in each bucket, a copy of the raw point with
count 1: their raw data already is that tier.

Deferred mode (`defer` + `flush`, what `processors.Chain.run` uses for the pipeline): a batch
only has its fresh rows set aside; `flush` (at the pipeline's checkpoint) aggregates everything
set aside since in one pass. `state` folds what is set aside into the open buckets first (its
rows wait for the next `flush`). `step` does the same per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.batch import TelemetryBatch
from core.state import State
from devices.series import SeriesTable
from processors.domain.derived import Output, Tier
from processors.domain.segments import (
    F64,
    I32,
    I64,
    IP,
    NEVER,
    B,
    bounds,
    ends,
    fresh_rows,
)

S = 1_000_000_000
FIELDS = ("bucket", "sum", "min", "max", "count", "last", "shown")


class Tiers:
    def __init__(self, table: SeriesTable, *, resolutions_s: Sequence[int] = (60, 3600),
                 refresh: int = 6) -> None:
        if not resolutions_s or min(resolutions_s) <= 0:
            raise ValueError(f"tiers: resolutions must be positive seconds, got {resolutions_s}")
        if refresh < 1:
            raise ValueError(f"tiers: refresh must be at least 1, got {refresh}")
        n = len(table)
        self.resolutions = tuple(int(r) for r in resolutions_s)
        self.refresh_ns = {r: r * S // refresh for r in self.resolutions}
        self.last_ts = np.full(n, NEVER, np.int64)
        self.clock = NEVER  # the data clock: the newest timestamp of any fresh reading
        interval = table.interval_s()
        # per resolution: the series it covers (None: all of them)
        self.covers: dict[int, B | None] = {
            r: None if (interval < r).all() else interval < r for r in self.resolutions}
        self.open: dict[int, State] = {r: _empty_open(n) for r in self.resolutions}
        self._restored_ts = self.last_ts.copy()  # each series' newest reading in the snapshot
        self._deferred: list[tuple[I32, I64, F64]] = []  # fresh rows set aside by `defer`
        self._ready: list[Tier] = []  # closed buckets folded by `state` before `flush`

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        return self.step(batch).batch

    def lookback_s(self) -> F64:
        """Per series, the history a replay needs: its open bucket of the widest tier."""
        need = np.zeros(len(self.last_ts))
        for r in self.resolutions:
            covers = self.covers[r]
            need = np.maximum(need, np.where(True if covers is None else covers, float(r), 0.0))
        return need

    def replayed(self, *, catch_up: bool) -> None:
        """After a replay (`ingest.warmup`): leave every open bucket to be written again in
        full. The buckets it closed are kept only where they are whole: after a restored
        snapshot (``catch_up``), for the series the snapshot had seen (it holds the bucket's
        readings before the replay: a kill -9 between two checkpoints that crossed a bucket
        boundary otherwise left the stored row with only the last checkpoint's part). A full
        warm-up's first bucket of a series may be partial (the window starts inside it):
        those rows are dropped, the stored ones stand."""
        self._fold()
        ready, self._ready = self._ready, []
        if catch_up:
            for tier in ready:
                whole = np.flatnonzero(self._restored_ts[tier.series] != NEVER)
                if len(whole):
                    self._ready.append(tier.take(whole))
        for st in self.open.values():
            st["shown"][:] = NEVER

    def step(self, batch: TelemetryBatch, order: IP | None = None) -> Output:
        self.defer(batch, order)
        return Output(batch, tiers=self.flush())

    def defer(self, batch: TelemetryBatch, order: IP | None = None) -> TelemetryBatch:
        """Set aside the batch's fresh rows for the next `flush` (see the module docstring)."""
        rows = fresh_rows(batch, self.last_ts, order)
        if len(rows):
            s, t, v = batch.series[rows], batch.ts_ns[rows], batch.value[rows]
            last = ends(s)
            self.last_ts[s[last]] = t[last]
            self._deferred.append((s, t, v))
        return batch

    def flush(self, *, all_open: bool = False) -> tuple[Tier, ...]:
        """The tier rows due since the last flush: closed buckets, and open ones whose refresh
        is due (``all_open``: every open bucket with readings not yet written)."""
        self._fold()
        ready, self._ready = self._ready, []
        out = []
        for r in self.resolutions:
            st = self.open[r]
            due = st["last"] > st["shown"]
            if not all_open:
                due &= st["shown"] <= max(self.clock - self.refresh_ns[r], NEVER)
            idx = np.flatnonzero(due)
            st["shown"][idx] = st["last"][idx]
            parts = [t for t in ready if t.resolution_s == r and len(t)]
            parts.append(Tier(r, st["bucket"][idx], idx.astype(np.int32),
                              st["sum"][idx] / st["count"][idx], st["min"][idx],
                              st["max"][idx], st["count"][idx]))
            tier = Tier.concat(r, parts)
            if len(tier):
                out.append(tier)
        return tuple(out)

    def _fold(self) -> None:
        """Aggregate the rows set aside into the open buckets; closed buckets to `_ready`."""
        if not self._deferred:
            return
        parts, self._deferred = self._deferred, []
        s = np.concatenate([p[0] for p in parts])
        # each batch's rows of a series are newer than the batch before's: a stable sort by
        # series alone leaves every series in time order
        order = np.argsort(s, kind="stable") if len(parts) > 1 else np.arange(len(s))
        s = s[order]
        t = np.concatenate([p[1] for p in parts])[order]
        v = np.concatenate([p[2] for p in parts])[order]
        self.clock = max(self.clock, int(t.max()))
        for r in self.resolutions:
            self._ready.append(self._fold_one(r, s, t, v))

    def _fold_one(self, res: int, s: I32, t: I64, v: F64) -> Tier:
        covers = self.covers[res]
        if covers is not None:  # only series reporting more often than res
            keep = covers[s]
            s, t, v = s[keep], t[keep], v[keep]
        first, last = bounds(s)
        width = res * S
        bucket = t - t % width
        new = first.copy()
        new[1:] |= bucket[1:] != bucket[:-1]
        if new.all():  # one reading per (series, bucket)
            gser, gb, gfirst, glast, gend = s, bucket, first, last, t
            total, vmin, vmax = v.copy(), v.copy(), v.copy()
            count = np.ones(len(s), np.int64)
        else:
            gs = np.flatnonzero(new)
            gser, gb, gfirst = s[gs], bucket[gs], first[gs]
            glast = ends(gser)
            gend = t[np.append(gs[1:], len(s)) - 1]
            total = np.add.reduceat(v, gs)
            vmin, vmax = np.minimum.reduceat(v, gs), np.maximum.reduceat(v, gs)
            count = np.diff(np.append(gs, len(s))).astype(np.int64)
        st = self.open[res]
        # Each series' first bucket here either continues its open bucket or closes it.
        head = np.flatnonzero(gfirst)
        hs = gser[head]
        continues = st["bucket"][hs] == gb[head]
        cont = head[continues]
        if len(cont):
            c = gser[cont]
            total[cont] += st["sum"][c]
            vmin[cont] = np.minimum(vmin[cont], st["min"][c])
            vmax[cont] = np.maximum(vmax[cont], st["max"][c])
            count[cont] += st["count"][c]
        gone = hs[~continues]
        gone = gone[st["last"][gone] > st["shown"][gone]]  # closed, not yet written in full
        closed = np.flatnonzero(~glast)  # closed by a later bucket of this fold
        out = Tier(res, np.concatenate([st["bucket"][gone], gb[closed]]),
                   np.concatenate([gone, gser[closed]]).astype(np.int32),
                   np.concatenate([st["sum"][gone] / st["count"][gone],
                                   total[closed] / count[closed]]),
                   np.concatenate([st["min"][gone], vmin[closed]]),
                   np.concatenate([st["max"][gone], vmax[closed]]),
                   np.concatenate([st["count"][gone], count[closed]]))
        sl = gser[glast]
        for name, col in zip(FIELDS[:6], (gb, total, vmin, vmax, count, gend), strict=True):
            st[name][sl] = col[glast]
        return out

    def state(self) -> State:
        self._fold()
        out: State = {"last_ts": self.last_ts, "clock": np.array(self.clock, np.int64)}
        for r, st in self.open.items():
            out.update({f"{r}s_{k}": a for k, a in st.items()})
        return out

    def restore(self, state: State) -> None:
        self._deferred, self._ready = [], []
        self.last_ts = np.asarray(state["last_ts"], np.int64).copy()
        self._restored_ts = self.last_ts.copy()
        # snapshots from before "clock", "last" and "shown" existed: every open bucket is
        # written once more at the next flush (harmless: a row overwrites itself)
        self.clock = int(state.get("clock", self.last_ts.max(initial=NEVER)))
        for r, st in self.open.items():
            for k in FIELDS:
                key = f"{r}s_{k}"
                if key in state:
                    st[k] = np.asarray(state[key], st[k].dtype).copy()
                elif k == "last":
                    st[k] = np.where(st["bucket"] != NEVER, self.last_ts, NEVER)
                else:
                    st[k] = np.full(len(self.last_ts), NEVER, np.int64)


def _empty_open(n: int) -> State:
    never = np.full(n, NEVER, np.int64)
    return {"bucket": never.copy(), "sum": np.zeros(n), "min": np.zeros(n), "max": np.zeros(n),
            "count": np.zeros(n, np.int64), "last": never.copy(), "shown": never.copy()}
