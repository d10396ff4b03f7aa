"""Vectorised per-series sequencing: the kernels every stateful processor is built from.

A batch is turned into *segments*: the OK rows of each series, sorted by time, that are strictly
newer than the last reading that series' state has seen. Rows at or before that time (late
arrivals, redeliveries after a restart) are left out, so replaying a batch never advances state
twice. Inside the segments, recurrences are solved with numpy scans, never a loop per reading.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
IP = npt.NDArray[np.intp]
A = TypeVar("A", bound=npt.NDArray[Any])

NEVER = np.iinfo(np.int64).min


def sort_order(batch: TelemetryBatch) -> IP:
    """Every row's index, sorted by (series, ts), ties in batch order (stable).

    Processors never change a row's series or timestamp, so a `processors.Chain` sorts a batch
    once and hands this order to each stateful step (see `fresh_rows`)."""
    ts, series = batch.ts_ns, batch.series
    n = len(ts)
    if n == 0:
        return np.empty(0, np.intp)
    t0, t1 = int(ts.min()), int(ts.max())
    span = t1 - t0 + 1
    if (int(series.max()) + 1) * span < 2**62 and int(series.min()) >= 0:
        # one int64 key (series, time): a single stable sort instead of a two-key lexsort
        key = series.astype(np.int64) * span + (ts - t0)
        return np.argsort(key, kind="stable")
    return np.lexsort((ts, series)).astype(np.intp)


def fresh_rows(batch: TelemetryBatch, last_ts: I64, order: IP | None = None,
               select: B | None = None) -> IP:
    """Indices of OK rows newer than ``last_ts[series]``, sorted by (series, ts).

    Of several rows of one series with the same timestamp only the first (in batch order) is
    kept. ``order``: `sort_order` of this batch (or of one with the same series and ts), when
    the caller already has it. ``select``: per series, whether its rows are wanted at all
    (a processor's own series: gauges, pollutants, ...); filtering first keeps a step that
    has nothing to do in the batch cheap.
    """
    if select is not None and not select.any():
        return np.empty(0, np.intp)
    rows = sort_order(batch) if order is None else order
    if select is not None:
        rows = rows[select[batch.series[rows]]]
    rows = rows[batch.status[rows] == 0]
    s, t = batch.series[rows], batch.ts_ns[rows]
    new = t > last_ts[s]
    rows, s, t = rows[new], s[new], t[new]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    fresh: IP = rows[keep]
    return fresh


def starts(series: I32) -> B:
    """Mask of the first row of each segment (``series`` sorted)."""
    first = np.ones(len(series), dtype=bool)
    first[1:] = series[1:] != series[:-1]
    return first


def ends(series: I32) -> B:
    """Mask of the last row of each segment (``series`` sorted)."""
    last = np.ones(len(series), dtype=bool)
    last[:-1] = series[1:] != series[:-1]
    return last


def bounds(series: I32) -> tuple[B, B]:
    """(`starts`, `ends`) of sorted ``series`` with one comparison pass."""
    first = starts(series)
    last = np.empty_like(first)
    last[:-1], last[-1:] = first[1:], True
    return first, last


def previous(x: A, series: I32, carried: A) -> A:
    """``x`` shifted by one row inside each segment; the first row gets ``carried[series]``."""
    out: A = x.copy()
    out[1:] = x[:-1]
    first = starts(series)
    out[first] = carried[series[first]]
    return out


def last_true_index(mask: B, series: I32) -> IP:
    """Per row: index of the latest row at or before it in the same segment where ``mask`` holds,
    or -1 when there is none (then the carried state applies)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    idx = np.maximum.accumulate(idx) if len(idx) else idx
    seg0 = np.maximum.accumulate(np.where(starts(series), np.arange(len(series)), 0)) \
        if len(series) else idx
    return np.where(idx >= seg0, idx, -1).astype(np.intp)


def rank(series: I32) -> IP:
    """0-based position of each row inside its segment."""
    n = len(series)
    seg0 = np.maximum.accumulate(np.where(starts(series), np.arange(n), 0)) if n else \
        np.empty(0, np.intp)
    return (np.arange(n) - seg0).astype(np.intp)


def affine_scan(c: F64, d: F64) -> F64:
    """Solve ``y[i] = c[i] * y[i-1] + d[i]`` (``y[-1] = 0``) for all rows at once.

    Put ``c = 0`` at segment starts and fold the carried state into ``d`` there, and the
    segments stay independent. Hillis-Steele prefix scan: log2(n) numpy steps, each a
    composition of affine maps; stable because every ``c`` used here is in [0, 1].
    """
    c, d = c.astype(np.float64, copy=True), d.astype(np.float64, copy=True)
    step = 1
    while step < len(c) and c[step:].any():
        d[step:] = d[step:] + c[step:] * d[:-step]
        c[step:] = c[step:] * c[:-step]
        step *= 2
    return d
