"""Vectorised InfluxDB line protocol for a `TelemetryBatch`.

Schema: measurement = the device's kind, tags ``device`` and ``site``, one float field per
metric, time = the device's timestamp in ns. Readings of one device at one timestamp become
ONE line with several fields, which InfluxDB stores several times cheaper than one line each::

    river_gauge,device=wl-01,site=kanigoro battery_v=3.9,level_cm=123.4 1700000000000000000

How it stays vectorised: `LineEncoder` renders, once per table, each series' two possible
line heads (``<measurement>,device=..,site=.. <field>=`` for a line's first field and
``,<field>=`` for the next ones) into a NUL-padded byte matrix. Encoding a batch sorts it
with `np.lexsort`, picks a head row per reading, writes value and timestamp digits with
integer arithmetic into fixed-width byte columns, and keeps the non-NUL bytes of the whole
matrix in one gather. There is no per-reading Python object.

Values are written as the shortest string that parses back to the same float64 (the digits
of ``repr(float)``): values with at most 15 significant digits take the integer-arithmetic
path; the rest go through numpy's Dragon4 (``astype("S")``), exact but slower.

Contract: only OK rows (``status == 0``) are encoded, so callers may pass the batch as the
processors left it, or an already filtered one. When a batch holds the same series twice at
the same timestamp the later row wins, as InfluxDB itself would do with two writes.
A non-finite OK value is a broken invariant (the decoder rejects them) and raises ValueError.
An encoder is immutable after construction and may be shared between tasks and threads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from devices.series import SeriesTable
from ingest.batch import TelemetryBatch

if TYPE_CHECKING:
    from processors.domain.derived import Tier

U8M = npt.NDArray[np.uint8]
_I64 = npt.NDArray[np.int64]

_POW10_I = 10 ** np.arange(19, dtype=np.int64)        # 1 .. 1e18
# ASCII of 0000..9999 as one uint32 each: four digits per table lookup.
_QUAD = np.array([b"%04d" % i for i in range(10_000)], dtype="S4").view(np.uint32)
_QUAD.setflags(write=False)
_MAX_K = 18                                           # decimals the fast paths write
# Long double must hold a 17-digit integer exactly for the 16/17-digit path (x86-64: 64 bits).
_LONG_OK = np.finfo(np.longdouble).nmant >= 63
_POW10_L = np.array([10**i for i in range(_MAX_K + 1)], dtype=np.longdouble)
_TS_GROUPS = 5                                        # 20 digit columns >= int64's 19
_TAIL_W = 1 + 1 + 4 * _TS_GROUPS + 1                  # ' ', sign, digits, '\n'


def escape_measurement(name: str) -> str:
    _check_printable(name)
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    _check_printable(name)
    return (name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
            .replace(" ", "\\ "))


def _check_printable(name: str) -> None:
    if not name or "\n" in name or "\r" in name or "\0" in name:
        raise ValueError(f"{name!r} cannot be written as a line protocol identifier")


def _digit_cols(u: _I64, groups: int) -> U8M:
    """ASCII digits of non-negative ``u``, zero-padded to ``4 * groups`` columns."""
    out = np.empty((len(u), groups), dtype=np.uint32)
    for g in range(groups - 1, -1, -1):
        u, rem = np.divmod(u, 10_000)                  # scalar divisor: numpy uses libdivide
        out[:, g] = _QUAD[rem]
    return out.view(np.uint8)


def _int_cols(u: _I64, groups: int) -> U8M:
    """Like `_digit_cols` with the leading zeros blanked to NUL ("0" stays "0")."""
    cols = _digit_cols(u, groups)
    nd = np.maximum(np.searchsorted(_POW10_I, u, side="right"), 1)
    cols *= np.arange(cols.shape[1]) >= (cols.shape[1] - nd)[:, None]
    return cols


def _fixed_point(a: npt.NDArray[np.float64]) -> tuple[_I64, _I64]:
    """(m, k) per value with ``a == m / 10**k`` for the shortest such decimal; k = -1 where
    no decimal of at most 17 significant digits and `_MAX_K` decimals was proven exact."""
    n = len(a)
    k_of = np.full(n, -1, dtype=np.int64)
    m_of = np.zeros(n, dtype=np.int64)
    # Up to 15 digits in doubles: m and 10**k are exact, so the quotient is the correctly
    # rounded value of the decimal m/10**k and equality proves that it parses back to a.
    todo = np.flatnonzero(((a >= 1e-4) & (a < 1e16)) | (a == 0))
    for decimals in range(_MAX_K + 1):
        if todo.size == 0:
            break
        scale = 10.0 ** decimals
        m = np.rint(a[todo] * scale)
        small = m < 1e15
        hit = small & (m / scale == a[todo])
        k_of[todo[hit]] = decimals
        m_of[todo[hit]] = m[hit]
        todo = todo[small & ~hit]
    todo = np.flatnonzero((k_of < 0) & (a >= 1e-4) & (a < 1e16))
    if not _LONG_OK or todo.size == 0:
        return m_of, k_of
    # 16 and 17 digits: the same test in long double, where m < 1e17 is still exact. Its
    # quotient is rounded twice (64 then 53 bits), which is only wrong when the first
    # rounding lands on a midpoint between doubles: those go to Dragon4.
    e10 = np.floor(np.log10(a[todo])).astype(np.int64)
    for digits in (16, 17):
        k = digits - 1 - e10
        fits = (k >= 0) & (k <= _MAX_K)
        todo, e10, k = todo[fits], e10[fits], k[fits]
        lscale = _POW10_L[k]
        exact = a[todo].astype(np.longdouble) * lscale   # within 2**-8 of a * 10**k
        m = np.rint(exact)
        q = m / lscale
        d = q.astype(np.float64)
        off, half = np.abs(q - d), np.spacing(d) / 2
        # a midpoint is half an ulp away, or a quarter below a power of two
        tie = (off == half) | ((off == half / 2) & (q < d) & (np.frexp(d)[0] == 0.5))
        # near a decimal tie the rounding may pick the farther neighbour: leave it to Dragon4
        unsure = tie | (np.abs(np.abs(exact - m) - 0.5) < 2.0 ** -7)
        hit = (m < 1e17) & (d == a[todo]) & ~unsure
        k_of[todo[hit]] = k[hit]
        m_of[todo[hit]] = m[hit].astype(np.int64)
        todo, e10 = todo[~hit & ~unsure], e10[~hit & ~unsure]
    return m_of, k_of


def format_floats(v: npt.NDArray[np.float64]) -> U8M:
    """Shortest round-trip decimal of each finite value (``repr(float)``'s digits), as
    NUL-padded rows of a byte matrix."""
    m, k = _fixed_point(np.abs(v))
    fast = np.flatnonzero(k >= 0)
    slow = np.flatnonzero(k < 0)
    m, k = m[fast], k[fast]
    p = _POW10_I[k]
    q, r = m // p, m % p
    ig = max(-(-len(str(int(q.max(initial=0)))) // 4), 1)
    fw = max(int(k.max(initial=0)), 1)                 # decimal columns
    fg = -(-fw // 4)
    width = max(1 + 4 * ig + 1 + fw, 24 if slow.size else 0)
    out = np.zeros((len(v), width), dtype=np.uint8)
    if fast.size:
        rows = out if not slow.size else np.zeros((len(fast), width), dtype=np.uint8)
        rows[:, 0] = np.where(np.signbit(v[fast]), ord("-"), 0)
        rows[:, 1:1 + 4 * ig] = _int_cols(q, ig)
        rows[:, 1 + 4 * ig] = ord(".")
        if 4 * fg <= _MAX_K:                           # left-align the decimals
            frac = _digit_cols(r * _POW10_I[4 * fg - k], fg)[:, :fw]
        else:
            frac = _digit_cols(r * _POW10_I[_MAX_K - k], 5)[:, 2:2 + fw]
        frac *= np.arange(fw) < np.maximum(k, 1)[:, None]   # 3 -> "3.0", as repr() writes
        rows[:, 2 + 4 * ig:2 + 4 * ig + fw] = frac
        if slow.size:
            out[fast] = rows
    if slow.size:
        out[slow, :24] = v[slow].astype("S24").view(np.uint8).reshape(-1, 24)
    return out


class LineEncoder:
    """Line protocol for the batches of one `SeriesTable` (see the module docstring).

    ``fields`` optionally renames the field of each series (default: its metric); `TierEncoder`
    uses it to give one source series several fields."""

    def __init__(self, table: SeriesTable, *, series: Sequence[int] | None = None,
                 fields: Sequence[str] | None = None) -> None:
        ids = list(range(len(table))) if series is None else list(series)
        names = [table.metric[s] for s in ids] if fields is None else list(fields)
        heads: list[bytes] = []
        for s, name in zip(ids, names, strict=True):
            d = table.devices[int(table.device_index[s])]
            field = escape_key(name).encode()
            prefix = (f"{escape_measurement(d.kind)},device={escape_key(d.id)},"
                      f"site={escape_key(d.site)} ").encode()
            heads += [b"," + field + b"=", prefix + field + b"="]
        width = max((len(h) for h in heads), default=1)
        self._heads: U8M = (np.array(heads, dtype=f"S{width}").view(np.uint8)
                            .reshape(-1, width))
        self._device: npt.NDArray[np.int32] = table.device_index[ids].astype(np.int32)
        # fields of a line in name order, the order InfluxDB's own writers use
        self._rank = np.empty(len(ids), dtype=np.int32)
        self._rank[sorted(range(len(ids)), key=lambda i: names[i])] = np.arange(
            len(ids), dtype=np.int32)

    def encode(self, batch: TelemetryBatch) -> bytes:
        """The OK rows of ``batch`` as line protocol (``b""`` when there are none)."""
        ok = batch.ok
        if not ok.all():
            batch = batch.take(ok)
        return self._encode(batch.ts_ns, batch.series, batch.value)

    def encode_rows(self, batch: TelemetryBatch,
                    rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> bytes:
        """Like `encode` for the rows selected by a mask or index array (e.g. half a batch
        that the database refused)."""
        return self.encode(batch.take(rows))

    def _encode(self, ts: _I64, series: npt.NDArray[np.int32],
                value: npt.NDArray[np.float64]) -> bytes:
        n = len(ts)
        if n == 0:
            return b""
        if not np.isfinite(value).all():
            bad = int(np.flatnonzero(~np.isfinite(value))[0])
            raise ValueError(f"series {int(series[bad])}: {value[bad]} is not a finite value "
                             "and cannot be written")
        dev = self._device[series]
        order = np.lexsort((self._rank[series], ts, dev))   # device, time, field name
        ts, series, value, dev = ts[order], series[order], value[order], dev[order]
        dup = (series[1:] == series[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():                                  # the later reading wins
            keep = np.append(~dup, True)
            ts, series, value, dev = ts[keep], series[keep], value[keep], dev[keep]
            n = len(ts)
        new = np.ones(n, dtype=bool)
        new[1:] = (dev[1:] != dev[:-1]) | (ts[1:] != ts[:-1])
        end = np.flatnonzero(np.append(new[1:], True))
        head_w = self._heads.shape[1]
        values = format_floats(value)
        val_w = values.shape[1]
        m = np.empty((n, head_w + val_w + _TAIL_W), dtype=np.uint8)
        m[:, :head_w] = self._heads[series.astype(np.intp) * 2 + new]
        m[:, head_w:head_w + val_w] = values
        m[:, head_w + val_w:] = 0
        t = ts[end]
        tail = m[end, head_w + val_w:]
        tail[:, 0] = ord(" ")
        tail[:, 1] = np.where(t < 0, ord("-"), 0)
        tail[:, 2:-1] = _int_cols(np.abs(t), _TS_GROUPS)
        tail[:, -1] = ord("\n")
        m[end, head_w + val_w:] = tail
        return bytes(m[m != 0].tobytes())


TIER_STATS = ("mean", "min", "max", "count")


class TierEncoder:
    """Line protocol for downsampled tiers (`processors.domain.derived.Tier`): one line per
    (device, bucket start) with fields ``<metric>_mean``, ``_min``, ``_max`` and ``_count``
    (float) for each of the device's series in the tier, in the same measurement and tags as
    the raw readings."""

    def __init__(self, table: SeriesTable) -> None:
        raw = range(table.raw)
        k = len(TIER_STATS)
        self._lines = LineEncoder(table, series=[s for s in raw for _ in TIER_STATS],
                                  fields=[f"{table.metric[s]}_{st}" for s in raw
                                          for st in TIER_STATS])
        self._k = k

    def encode(self, tier: Tier) -> bytes:
        n, k = len(tier), self._k
        if n == 0:
            return b""
        series = (tier.series.astype(np.int32)[:, None] * np.int32(k)
                  + np.arange(k, dtype=np.int32)).ravel().astype(np.int32)
        value = np.stack([tier.mean, tier.min, tier.max, tier.count.astype(np.float64)],
                         axis=1).ravel()
        return self._lines._encode(np.repeat(tier.ts_ns, k), series, value)


def encode_naive(table: SeriesTable, batch: TelemetryBatch) -> bytes:
    """One f-string per reading and no grouping: the baseline `bench` compares against."""
    out = []
    for t, s, v, st in zip(batch.ts_ns.tolist(), batch.series.tolist(), batch.value.tolist(),
                           batch.status.tolist(), strict=True):
        if st == 0:
            d = table.devices[int(table.device_index[s])]
            out.append(f"{d.kind},device={d.id},site={d.site} {table.metric[s]}={v!r} {t}\n")
    return "".join(out).encode()


def bench(n: int = 100_000, *, decimals: int | None = 2, repeat: int = 5) -> str:
    """`LineEncoder` vs `encode_naive`, best of ``repeat``, on the shipped registry: every
    device reports all its metrics each minute, values rounded to ``decimals``."""
    from devices.registry import default_registry_path, load_registry

    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    value = np.random.default_rng(1).normal(100.0, 30.0, n)
    batch = TelemetryBatch.from_arrays(
        1_700_000_000_000_000_000 + (np.arange(n) // len(table)) * 60_000_000_000,
        np.resize(np.arange(len(table), dtype=np.int32), n),
        value if decimals is None else np.round(value, decimals))
    enc = LineEncoder(table)
    best: dict[str, tuple[float, int]] = {}
    for name, fn in (("vectorised", enc.encode), ("naive", partial(encode_naive, table))):
        secs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            lines = fn(batch).count(b"\n")
            secs.append(time.perf_counter() - t0)
        best[name] = (min(secs), lines)
    (tv, lv), (tn, ln) = best["vectorised"], best["naive"]
    return (f"{n} readings, {'full precision' if decimals is None else f'{decimals} decimals'}:"
            f" vectorised {tv * 1e3:.1f} ms, {lv} lines, {n / tv:,.0f} readings/s, "
            f"{lv / tv:,.0f} lines/s | naive {tn * 1e3:.1f} ms, {ln} lines, {n / tn:,.0f} "
            f"readings/s | speedup x{tn / tv:.1f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m ingest.lineproto")
    p.add_argument("--bench", action="store_true", help="time the encoder against naive")
    p.add_argument("-n", type=int, default=100_000, help="readings per batch")
    args = p.parse_args()
    if not args.bench:
        p.error("nothing to do: pass --bench")
    for decimals in (2, None):
        print(bench(args.n, decimals=decimals))
