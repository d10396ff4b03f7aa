"""Time-window aggregates per series from bounded state: the readings summed per time bucket.

`Rings` keeps, for every series it covers, aggregates of its readings per bucket of ``width``
(bucket ``b`` holds the readings with ts in ``(b * width, (b + 1) * width]``) for the series'
newest ``slots`` buckets: the count, sums of named columns, and the min or max of others. Its
size is ``slots`` x fields per series, however fast the series reports; a reading costs O(1)
to fold in, and a batch costs O(rows + touched series x slots).

The windows it answers are on the bucket grid: a window of ``k`` buckets ending at a reading
at ``t`` holds that series' readings with ts in ``((b(t) + 1 - k) * width, t]``. For a reading
at a multiple of ``width`` that is exactly ``(t - k * width, t]``; otherwise the window's start
is rounded up to the grid, so the window is up to one bucket shorter. That is the price of
bounded state: an exact ``(t - w, t]`` for every reading needs every reading of the window.

`Frame` (one per batch of fresh rows, sorted by (series, ts), each newer than its series'
``last_ts``: `processors.domain.segments.fresh_rows`) answers, for every row, aggregates over
bucket ranges of the state *plus* the batch's rows of that series up to and including the row
itself, so results do not depend on how readings are split into batches; `Rings.fold` then adds
the batch to the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.state import State
from processors.domain.segments import F64, I32, I64, IP, NEVER, B, ends, starts

COUNT = "count"  # the readings per bucket, always kept


class Rings:
    """Bucketed recent readings of the series in ``select`` (see the module docstring).

    ``width_ns``: bucket width, one for all series or one per series; ``sums``: columns kept as
    per-bucket sums; ``mins`` / ``maxs``: columns kept as per-bucket minimum / maximum."""

    def __init__(self, select: B, width_ns: int | I64, slots: int, *, sums: Sequence[str] = (),
                 mins: Sequence[str] = (), maxs: Sequence[str] = ()) -> None:
        n, k = len(select), int(np.count_nonzero(select))
        self.row = np.full(n, -1, np.int32)  # series -> its row of the rings
        self.row[select] = np.arange(k, dtype=np.int32)
        self.width = np.broadcast_to(np.asarray(width_ns, np.int64), (n,)).copy()
        if (self.width <= 0).any() or slots < 1:
            raise ValueError("rolling: bucket widths and slots must be positive")
        self.slots = slots
        self.last_ts = np.full(n, NEVER, np.int64)  # per series: the newest reading folded in
        self.head = np.full(k, NEVER, np.int64)  # per row: its newest bucket
        # Counts as int32 (half of float64; exact up to 2**31 readings per bucket): at 100,000
        # devices the air-quality count ring alone is 65,000 series x 288 buckets.
        self.cols: dict[str, npt.NDArray[Any]] = {COUNT: np.zeros((k, slots), np.int32)}
        self.cols.update({c: np.zeros((k, slots)) for c in sums})
        self.empty = {COUNT: 0.0, **dict.fromkeys(sums, 0.0), **dict.fromkeys(mins, np.inf),
                      **dict.fromkeys(maxs, -np.inf)}
        self.cols.update({c: np.full((k, slots), self.empty[c]) for c in (*mins, *maxs)})
        self.reduce = {c: np.add if c in sums or c == COUNT else
                       np.minimum if c in mins else np.maximum for c in self.cols}

    def frame(self, s: I32, t: I64) -> Frame:
        return Frame(self, s, t)

    def fold(self, f: Frame, values: Mapping[str, F64]) -> None:
        """Add the frame's rows to the state; ``values``: per row, every column but the count."""
        s, b = f.s, f.b
        gs = f.groups()[0]  # one group per (series, bucket)
        gser, gb = s[gs], b[gs]
        agg = {COUNT: np.diff(np.append(gs, len(s))).astype(np.float64)}
        agg.update({c: self.reduce[c].reduceat(values[c], gs) for c in self.cols if c != COUNT})
        last = ends(gser)
        rows, head = self.row[gser[last]], gb[last]
        old = self.head[rows]
        # clear the slots of the buckets the series' head moves past (all on its first fold)
        d = head - np.maximum(old, head - self.slots)  # NEVER: all of them
        clear_r = np.repeat(rows, d)
        clear_p = (np.repeat(head - d + 1, d) + _ramp(d)) % self.slots
        for c, a in self.cols.items():
            a[clear_r, clear_p] = self.empty[c]
        self.head[rows] = head
        keep = gb > self.head[self.row[gser]] - self.slots  # within the ring
        r, p = self.row[gser[keep]], gb[keep] % self.slots
        for c, a in self.cols.items():  # (row, slot) pairs are unique: plain fancy indexing
            a[r, p] = self.reduce[c](a[r, p], agg[c][keep])
        end = ends(s)
        self.last_ts[s[end]] = f.t[end]

    def state(self, prefix: str) -> State:
        return {f"{prefix}last_ts": self.last_ts, f"{prefix}head": self.head,
                **{f"{prefix}{c}": a for c, a in self.cols.items()}}

    def restore(self, state: State, prefix: str) -> None:
        self.last_ts = np.asarray(state[f"{prefix}last_ts"], np.int64).copy()
        self.head = np.asarray(state[f"{prefix}head"], np.int64).copy()
        for c, a in self.cols.items():
            got = np.asarray(state[f"{prefix}{c}"], a.dtype)
            if got.shape != a.shape:
                raise ValueError(f"rolling state {prefix}{c}: shape {got.shape}, not {a.shape}")
            self.cols[c] = got.copy()

    def nbytes(self) -> int:
        """Bytes of state: fixed by the series and slots, never by the readings."""
        return sum(a.nbytes for a in (self.last_ts, self.head, *self.cols.values()))


class Frame:
    """One batch's rows against the state (see the module docstring). ``b``: each row's
    bucket; columns of `state` are chronological: column ``i`` is bucket ``base + i``."""

    def __init__(self, rings: Rings, s: I32, t: I64) -> None:
        self.rings, self.s, self.t = rings, s, t
        self.b: I64 = (t - 1) // rings.width[s]
        self.first = starts(s)
        self.seg = np.cumsum(self.first) - 1  # row -> its series' segment (touched index)
        self.seg0 = np.flatnonzero(self.first)[self.seg]  # row -> first row of its segment
        urow = rings.row[s[self.first]]
        head = rings.head[urow]
        self.base_u = np.where(head == NEVER, 0, head - rings.slots + 1)
        self.base: I64 = self.base_u[self.seg]
        self._idx = (urow[:, None], (self.base_u[:, None] + np.arange(rings.slots)) % rings.slots)
        self._cache: dict[str, F64] = {}
        self._groups: tuple[IP, IP] | None = None

    def state(self, col: str) -> F64:
        """Shape (touched series, slots): the state's buckets of ``col``, oldest first."""
        if col not in self._cache:  # as float64: the counts are kept as int32
            self._cache[col] = self.rings.cols[col][self._idx].astype(np.float64, copy=False)
        return self._cache[col]

    def groups(self) -> tuple[IP, IP]:
        """(first row of each (series, bucket) group, each row's group): the rows of one
        bucket share everything but what they add to their own bucket."""
        if self._groups is None:
            new = self.first.copy()
            new[1:] |= self.b[1:] != self.b[:-1]
            self._groups = np.flatnonzero(new), (np.cumsum(new) - 1).astype(np.intp)
        return self._groups

    def upto(self, col: str, x: I64, values: F64 | None = None, rows: IP | None = None) -> F64:
        """Per row (``x``: shape (rows,) or (rows, k)): the sum of ``col`` over the buckets
        <= ``x`` of the row's series, in the state and in the batch up to the row itself.
        ``values``: every row's own value of ``col`` (None for the count); ``rows``: the rows
        ``x`` is for (default: all)."""
        at_rows = np.arange(len(self.s)) if rows is None else rows
        x2 = x.reshape(len(at_rows), -1)
        cum = np.cumsum(self.state(col), axis=1)
        cum = np.concatenate([np.zeros((len(cum), 1)), cum], axis=1)
        at = np.clip(x2 - self.base[at_rows][:, None] + 1, 0, self.rings.slots)
        out = cum[self.seg[at_rows][:, None], at]
        v = np.ones(len(self.s)) if values is None else values
        pre = np.concatenate([[0.0], np.cumsum(v)])
        end = np.minimum(self._position(x2, at_rows), at_rows[:, None] + 1)
        out += pre[end] - pre[self.seg0[at_rows]][:, None]
        res: F64 = out.reshape(x.shape)
        return res

    def after(self, col: str, lo: I64, values: F64) -> F64:
        """Per row: the min (or max, as ``col`` is kept) of ``col`` over the buckets > ``lo``
        of the row's series, in the state and in the batch up to the row itself."""
        op = self.rings.reduce[col]
        st = self.state(col)
        suffix = op.accumulate(st[:, ::-1], axis=1)[:, ::-1]
        suffix = np.concatenate([suffix, np.full((len(st), 1), self.rings.empty[col])], axis=1)
        out = suffix[self.seg, np.clip(lo - self.base + 1, 0, self.rings.slots)]
        res: F64 = op(out, _range_reduce(op, values, self.first_after(lo), np.arange(len(self.s))))
        return res

    def first_after(self, lo: I64) -> IP:
        """Per row: the first batch row of its series with bucket > ``lo`` (``lo`` below the
        row's own bucket, so that row is at or before it)."""
        out: IP = self._position(lo[:, None], np.arange(len(self.s)))[:, 0]
        return out

    def _position(self, x: I64, rows: IP) -> IP:
        """Per (row of ``rows``, query): the index of the first batch row after every row of
        that row's series with bucket <= x (rows sorted by (series, bucket))."""
        seg, b = self.seg, self.b
        qs = seg[rows]
        bmin, bmax = int(b.min()), int(b.max())
        span = bmax - bmin + 2
        q = np.clip(x, bmin - 1, bmax) - bmin + 1
        if (int(seg[-1]) + 1) * span < 2**62:  # one sortable int64 key: (segment, bucket)
            key = seg * span + (b - bmin + 1)
            out: IP = np.searchsorted(key, qs[:, None] * span + q, side="right")
            return out
        # too wide for one key: merge the rows and the queries with one lexsort
        n, flat_q = len(seg), (q + bmin - 1).ravel()
        qseg = np.repeat(qs, q.shape[1])
        order = np.lexsort((np.r_[np.zeros(n, np.int8), np.ones(len(flat_q), np.int8)],
                            np.r_[b, flat_q], np.r_[seg, qseg]))
        before = np.cumsum(order < n)
        pos = np.empty(len(flat_q), np.intp)
        pos[order[order >= n] - n] = before[order >= n]
        return pos.reshape(q.shape)


def _ramp(d: I64) -> I64:
    """0, 1, .., d[0]-1, 0, 1, .., d[1]-1, ...: positions inside runs of lengths ``d``."""
    total = int(d.sum())
    if total == 0:
        return np.empty(0, np.int64)
    starts_at = np.repeat(np.cumsum(d) - d, d)
    out: I64 = np.arange(total, dtype=np.int64) - starts_at
    return out


def _range_reduce(op: np.ufunc, v: F64, lo: IP, hi: IP) -> F64:
    """``op`` (min or max) of ``v[lo..hi]`` per query, ``lo <= hi`` (sparse table, log2 levels
    of the longest range)."""
    length = hi - lo + 1
    k = np.floor(np.log2(np.maximum(length, 1))).astype(np.intp)
    levels = [v]
    for j in range(1, int(k.max(initial=0)) + 1):
        h = 1 << (j - 1)
        levels.append(op(levels[-1][:-h], levels[-1][h:]))
    out = np.empty(len(hi))
    for j in np.unique(k):
        m = k == j
        out[m] = op(levels[j][lo[m]], levels[j][hi[m] - (1 << int(j)) + 1])
    return out
