"""Vectorised InfluxDB line protocol for a `TelemetryBatch`.

Schema: measurement = the device's kind, tags ``device`` and ``site``, one float field per
metric, time = the device's timestamp in ns. Readings of one device at one timestamp become
ONE line with several fields, which InfluxDB stores several times cheaper than one line each::

    river_gauge,device=wl-01,site=kanigoro battery_v=3.9,level_cm=123.4 1700000000000000000

How it stays vectorised: `LineEncoder` renders, once per table, each device's line prefix
(``<measurement>,device=..,site=.. ``) and each series' two field heads (``<field>=`` for a
line's first field, ``,<field>=`` for the next ones) as NUL-padded byte items. Encoding a batch
sorts it with one stable argsort of a packed (device, time, field name) key, then lays the
text out as NUL-padded records: a prefix per line, then per reading its field head, its value
and, at a line's end, the timestamp. Digits are written with integer arithmetic, four per
table lookup; one mask keeps the non-NUL bytes. There is no per-reading Python object.

Values are written as the shortest string that parses back to the same float64 (the digits
of ``repr(float)``), each proven exact: one test in doubles covers every value with at most
four decimals (what sensors report), a second one 15 significant digits, long double 16 and
17 digits. What none of them proves, and values below 1e-4 or from 1e16 on (which repr()
writes with an exponent), go through numpy's Dragon4 (``astype("S")``), exact but slower.

Contract: only OK rows (``status == 0``) are encoded, so callers may pass the batch as the
processors left it, or an already filtered one. When a batch holds the same series twice at
the same timestamp the later row wins, as InfluxDB itself would do with two writes.
A non-finite OK value is a broken invariant (the decoder rejects them) and raises ValueError.
An encoder is immutable after construction and may be shared between tasks and threads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
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
_POW10_F = 10.0 ** np.arange(23)                      # exact doubles 1 .. 1e22


def _quads(render: Callable[[int], bytes]) -> npt.NDArray[np.uint32]:
    """``render(i)`` (4 bytes) for i = 0..9999 as one uint32 each: four digits per lookup."""
    return np.frombuffer(b"".join(render(i) for i in range(10_000)), dtype=np.uint32)


def _table(*blocks: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    table = np.concatenate(blocks)
    table.setflags(write=False)
    return table


_DIGITS = _quads(lambda i: b"%04d" % i)
# Blocks of 10,000: all four digits; the zeros ahead (integer part) or behind (fraction) as
# NUL, so 0 is no digit at all; and for integers 0 as "0", which a zero integer part shows.
_INT_QUADS = _table(_DIGITS, _quads(lambda i: (b"%d" % i if i else b"").rjust(4, b"\0")),
                    _quads(lambda i: (b"%d" % i).rjust(4, b"\0")))
_FRAC_QUADS = _table(_DIGITS, _quads(lambda i: (b"%04d" % i).rstrip(b"0").ljust(4, b"\0")))
_SHORT = 4                                            # decimals of the one-pass test
_MAX_K = 18                                           # decimals the fast paths write
# Long double must hold a 17-digit integer exactly for the 16/17-digit path (x86-64: 64 bits).
_LONG_OK = np.finfo(np.longdouble).nmant >= 63
_POW10_L = np.array([10**i for i in range(_MAX_K + 1)], dtype=np.longdouble)
_TS_GROUPS = 5                                        # 20 digit columns >= int64's 19
_TAIL_W = 1 + 1 + 4 * _TS_GROUPS + 1                  # ' ', sign, digits, '\n'
_SLICE = 1 << 18                                      # bytes compacted at a time


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


def _int_digits(u: _I64, groups: int) -> npt.NDArray[np.uint32]:
    """ASCII of non-negative ``u < 10**(4 * groups)`` right-aligned in ``groups`` quads,
    leading zeros as NUL ("0" stays "0")."""
    if groups == 1:
        return _INT_QUADS[u + 20_000][:, None]
    # all groups at once, most significant first: few numpy calls for many short rows
    rem = u // _POW10_I[4 * np.arange(groups - 1, -1, -1)][:, None] % 10_000
    alone = ~np.logical_or.accumulate(rem[:-1] != 0, axis=0) * 10_000   # nothing ahead
    rem[0] += 10_000
    rem[1:] += alone
    rem[-1] += alone[-1]                               # the last digit shows even if 0
    return np.ascontiguousarray(_INT_QUADS[rem].T)


def _frac_digits(x: _I64, groups: int) -> npt.NDArray[np.uint32]:
    """ASCII of the ``4 * groups`` digits of ``x`` (zero-padded ahead) in ``groups`` quads,
    zeros behind the last non-zero digit as NUL."""
    out = np.empty((len(x), groups), dtype=np.uint32)
    more = None                                        # a later group has a non-zero digit
    for g in range(groups - 1, -1, -1):
        x, rem = np.divmod(x, 10_000) if g else (x, x)
        out[:, g] = _FRAC_QUADS[rem + 10_000 if more is None else rem + ~more * 10_000]
        if g:
            more = rem != 0 if more is None else more | (rem != 0)
    return out


def _records(n: int, **fields: int) -> npt.NDArray[np.void]:
    """``n`` uninitialised packed records of byte fields (width 1: uint8, else void): column
    writes into one are 1-D copies, far cheaper than into a 2-D slice of a byte matrix."""
    return np.empty(n, dtype=np.dtype([(k, "u1" if w == 1 else f"V{w}")
                                       for k, w in fields.items()]))


def _voids(items: list[bytes]) -> npt.NDArray[np.void]:
    """``items`` NUL-padded to one width, one void item each: a gather of them copies whole
    items, not bytes."""
    width = max((len(b) for b in items), default=1)
    return np.array(items, dtype=f"S{width}").view(f"V{width}")


def _lead(items: npt.NDArray[np.void], width: int) -> npt.NDArray[np.void]:
    """A view of the first ``width`` bytes of each item, as one void item each."""
    return items.view({"names": ["lead"], "formats": [f"V{width}"],
                       "itemsize": items.dtype.itemsize})["lead"]


def _void(a: npt.NDArray[np.generic]) -> npt.NDArray[np.void]:
    """The rows of a C-contiguous 2-D array as one void item each."""
    return a.view(f"V{a.shape[1] * a.itemsize}")[:, 0]


def _fixed_point(a: npt.NDArray[np.float64]) -> tuple[_I64, _I64]:
    """(m, k) per value: ``m / 10**k`` is the shortest decimal that parses back to ``a``,
    m possibly with zeros behind; k = -1 where no decimal of at most 17 significant digits
    and `_MAX_K` decimals was proven exact."""
    # Up to 15 digits in doubles: m and 10**k are exact, so the quotient is the correctly
    # rounded value of the decimal m/10**k and equality proves that it parses back to a.
    # Such a decimal is unique, and scaled to k >= its decimals it rounds to itself (error
    # < 1/4): one test at _SHORT decimals, what sensors report, finds all of those at once.
    scale = _POW10_F[_SHORT]
    with np.errstate(over="ignore"):                   # huge values: inf, no hit
        m = np.rint(a * scale)
    hit = (m < 1e15) & (m / scale == a)
    if hit.all():
        return m.astype(np.int64), np.full(len(a), _SHORT, dtype=np.int64)
    k_of = np.where(hit, _SHORT, -1)
    m_of = np.where(hit, m, 0.0).astype(np.int64)
    todo = np.flatnonzero(~hit)
    todo = todo[(a[todo] >= 1e-4) & (a[todo] < 1e16)]
    if todo.size == 0:
        return m_of, k_of
    # The rest at 15 significant digits. A floor(log10) one off tests 14 or 16 digits, which
    # m < 1e15 and the test keep exact; what they miss takes the paths below.
    e10 = np.floor(np.log10(a[todo])).astype(np.int64)
    k = np.minimum(14 - e10, _MAX_K)
    scale = _POW10_F[np.maximum(k, 0)]
    m = np.rint(a[todo] * scale)
    hit = (k >= 0) & (m < 1e15) & (m / scale == a[todo])
    k_of[todo[hit]] = k[hit]
    m_of[todo[hit]] = m[hit]
    todo, e10 = todo[~hit], e10[~hit]
    if not _LONG_OK or todo.size == 0:
        return m_of, k_of
    # 16 and 17 digits: the same test in long double, where m < 1e17 is still exact. Its
    # quotient is rounded twice (64 then 53 bits), which is only wrong when the first
    # rounding lands on a midpoint between doubles: those go to Dragon4.
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


def _decimal_text(v: npt.NDArray[np.float64], m: _I64, k: _I64 | int) -> U8M:
    """``v`` (``== ±m / 10**k``) as repr() writes it, as NUL-padded rows: sign, integer
    digits, ".", decimals without the zeros behind ("3.0" keeps one)."""
    q, r = np.divmod(m, _POW10_I[k])
    ig = max(-(-len(str(int(q.max(initial=0)))) // 4), 1)
    fg = -(-max(k if isinstance(k, int) else int(k.max()), 1) // 4)
    d = min(4 * fg, _MAX_K)                            # r * 10**(d - k) stays in int64
    frac = _frac_digits(r * _POW10_I[d - k], fg)
    if d < 4 * fg:                                     # drop the columns of the zeros ahead
        frac = np.ascontiguousarray(frac.view(np.uint8)[:, 4 * fg - d:])
    out = _records(len(v), sign=1, int=4 * ig, dot=1, frac=d)
    out["sign"] = np.signbit(v).view(np.uint8) * ord("-")
    out["int"] = _void(_int_digits(q, ig))
    out["dot"] = ord(".")
    out["frac"] = _void(frac)
    text = out.view(np.uint8).reshape(len(v), -1)
    text[:, 2 + 4 * ig] |= (r == 0).view(np.uint8) * ord("0")   # 3 -> "3.0"
    return text


def format_floats(v: npt.NDArray[np.float64]) -> U8M:
    """Shortest round-trip decimal of each finite value (``repr(float)``'s digits), as
    NUL-padded rows of a byte matrix."""
    m, k = _fixed_point(np.abs(v))
    short = k == _SHORT
    if short.all():
        return _decimal_text(v, m, _SHORT)
    # rows only line up in width: write each kind of row apart, then place them
    parts = []
    rows = np.flatnonzero(short)
    if rows.size:
        parts.append((rows, _decimal_text(v[rows], m[rows], _SHORT)))
    rows = np.flatnonzero(~short & (k >= 0))
    if rows.size:
        parts.append((rows, _decimal_text(v[rows], m[rows], k[rows])))
    slow = np.flatnonzero(k < 0)
    if slow.size:                                      # Dragon4: shortest, exact, slow
        text = v[slow].astype("S24").view(np.uint8).reshape(-1, 24)
        parts.append((slow, text[:, :int(np.flatnonzero(text.any(axis=0))[-1]) + 1]))
    out = np.zeros((len(v), max(p.shape[1] for _, p in parts)), dtype=np.uint8)
    for rows, p in parts:
        _lead(_void(out), p.shape[1])[rows] = _void(p)
    return out


class LineEncoder:
    """Line protocol for the batches of one `SeriesTable` (see the module docstring).

    ``fields`` optionally renames the field of each series (default: its metric); `TierEncoder`
    uses it to give one source series several fields."""

    def __init__(self, table: SeriesTable, *, series: Sequence[int] | None = None,
                 fields: Sequence[str] | None = None) -> None:
        ids = list(range(len(table))) if series is None else list(series)
        names = [table.metric[s] for s in ids] if fields is None else list(fields)
        # a line: the device's prefix, then its fields as "f=<v>" (first) or ",f=<v>"
        prefixes = [f"{escape_measurement(d.kind)},device={escape_key(d.id)},"
                    f"site={escape_key(d.site)} ".encode() for d in table.devices]
        heads = [h for name in names for f in [escape_key(name).encode() + b"="]
                 for h in (b"," + f, f)]
        self._prefixes, self._heads = _voids(prefixes), _voids(heads)
        self._device: npt.NDArray[np.int32] = table.device_index[ids].astype(np.int32)
        # fields of a line in name order, the order InfluxDB's own writers use
        self._rank = np.empty(len(ids), dtype=np.int32)
        self._rank[sorted(range(len(ids)), key=lambda i: names[i])] = np.arange(
            len(ids), dtype=np.int32)
        self._bits = (max(len(table.devices) - 1, 0).bit_length(),
                      max(len(ids) - 1, 0).bit_length())

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
        order = line_order(dev, ts, self._rank[series], self._bits)
        ts, series, value, dev = ts[order], series[order], value[order], dev[order]
        dup = (series[1:] == series[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():                                  # the later reading wins
            keep = np.append(~dup, True)
            ts, series, value, dev = ts[keep], series[keep], value[keep], dev[keep]
            n = len(ts)
        new = np.ones(n, dtype=bool)
        new[1:] = (dev[1:] != dev[:-1]) | (ts[1:] != ts[:-1])
        last = np.empty(n, dtype=bool)
        last[:-1], last[-1] = new[1:], True
        end = np.flatnonzero(last)
        values = format_floats(value)
        head_w, val_w = self._heads.dtype.itemsize, values.shape[1]
        # NUL-padded records of which the non-NUL bytes are the text: the prefix of each line,
        # then per row its field's head, value and, at a line's end, the timestamp
        first = np.flatnonzero(new)
        at = np.arange(n) + np.cumsum(new)             # row i follows its line's prefix
        width = max(head_w + val_w + _TAIL_W, self._prefixes.dtype.itemsize)
        m = np.zeros(n + len(first), dtype={"names": ["head", "value", "tail"], "formats": [
            f"V{head_w}", f"V{val_w}", f"V{_TAIL_W}"], "itemsize": width})
        m["head"][at] = np.take(self._heads, series.astype(np.intp) * 2 + new)
        m["value"][at] = _void(values)
        t = ts[end]
        tail = _records(len(t), space=1, sign=1, digits=4 * _TS_GROUPS, newline=1)
        tail["space"] = ord(" ")
        tail["sign"] = (t < 0).view(np.uint8) * ord("-")
        tail["digits"] = _void(_int_digits(np.abs(t), _TS_GROUPS))
        tail["newline"] = ord("\n")
        m["tail"][at[end]] = tail.view(f"V{_TAIL_W}")
        _lead(m, self._prefixes.dtype.itemsize)[first + np.arange(len(first))] = np.take(
            self._prefixes, dev[first])
        flat = m.view(np.uint8)
        # large ones (tiers) in slices: a mask as large as the records would be fresh memory,
        # paged in on every call; a batch's records fit blocks that the allocator reuses
        step = _SLICE if len(flat) > 4 * _SLICE else len(flat)
        return b"".join([part[part != 0] for part in (
            flat[i:i + step] for i in range(0, len(flat), step))])


def line_order(dev: npt.NDArray[np.int32], ts: _I64, rank: npt.NDArray[np.int32],
               bits: tuple[int, int]) -> npt.NDArray[np.intp]:
    """``np.lexsort((rank, ts, dev))`` (stable: equal keys keep their order), as one stable
    sort of a packed uint64 key when ``bits`` (of device and rank) and the timestamps fit."""
    t = (ts - ts.min()).view(np.uint64)                # exact: the wrap-around cancels
    t_bits = int(t.max()).bit_length()
    if sum(bits) + t_bits > 63:                        # e.g. tier buckets: count in steps
        t = t // max(int(np.gcd.reduce(t)), 1)
        t_bits = int(t.max()).bit_length()
    if sum(bits) + t_bits > 63:                        # a long span: rank the timestamps
        uniq, inv = np.unique(ts, return_inverse=True)
        t, t_bits = inv.astype(np.uint64), (len(uniq) - 1).bit_length()
    if sum(bits) + t_bits > 63:
        return np.lexsort((rank, ts, dev))
    key = dev.astype(np.uint64) << (t_bits + bits[1])
    key |= t << bits[1]
    key |= rank.astype(np.uint64)
    return np.argsort(key, kind="stable")


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
