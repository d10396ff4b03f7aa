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

import numpy as np
import numpy.typing as npt

from devices.series import SeriesTable
from ingest.batch import TelemetryBatch

U8M = npt.NDArray[np.uint8]
_I64 = npt.NDArray[np.int64]

_POW10_I = 10 ** np.arange(19, dtype=np.int64)        # 1 .. 1e18
_FRAC_W = 19      # fast path: |x| >= 1e-4 and fewer than 16 digits -> at most 19 decimals
_INT_W = 15
_VALUE_W = 1 + _INT_W + 1 + _FRAC_W                   # sign, integer digits, '.', decimals
_TS_W = 19                                            # digits of int64 max
_TAIL_W = 1 + 1 + _TS_W + 1                           # ' ', sign, digits, '\n'


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


def _digits(u: _I64, width: int) -> U8M:
    """ASCII digits of non-negative ``u`` right-aligned in ``width`` columns, leading NULs."""
    d = (u[:, None] // _POW10_I[width - 1::-1]) % 10
    out = (d + 48).astype(np.uint8)
    lead = np.cumsum(d != 0, axis=1) == 0
    lead[:, -1] = False                                # 0 is written as "0"
    out[lead] = 0
    return out


def format_floats(v: npt.NDArray[np.float64]) -> U8M:
    """Shortest round-trip decimal of each value, as NUL-padded rows of a byte matrix."""
    n = len(v)
    out = np.zeros((n, _VALUE_W), dtype=np.uint8)
    a = np.abs(v)
    todo = np.flatnonzero(((a >= 1e-4) & (a < 1e15)) | (a == 0))
    k_of = np.full(n, -1, dtype=np.int64)
    m_of = np.zeros(n, dtype=np.int64)
    for k in range(_FRAC_W + 1):
        if todo.size == 0:
            break
        scale = 10.0 ** k
        m = np.rint(a[todo] * scale)
        small = m < 1e15
        # m and 10**k are exact doubles, so the quotient is the correctly rounded value of
        # the decimal m/10**k: equality proves that the string parses back to the value.
        hit = small & (m / scale == a[todo])
        k_of[todo[hit]] = k
        m_of[todo[hit]] = m[hit].astype(np.int64)
        todo = todo[small & ~hit]
    fast = np.flatnonzero(k_of >= 0)
    slow = np.flatnonzero(k_of < 0)
    if fast.size:
        k, m = k_of[fast], m_of[fast]
        p = _POW10_I[k]
        rows = out[fast]
        rows[:, 0] = np.where(np.signbit(v[fast]), ord("-"), 0)
        rows[:, 1:1 + _INT_W] = _digits(m // p, _INT_W)
        rows[:, 1 + _INT_W] = ord(".")
        j = np.arange(_FRAC_W)
        exp = k[:, None] - 1 - j                        # power of ten of each decimal column
        frac = ((m % p)[:, None] // _POW10_I[np.maximum(exp, 0)]) % 10 + 48
        frac[exp < 0] = 0
        frac[k == 0, 0] = ord("0")                      # 3 -> "3.0", as repr() writes it
        rows[:, 2 + _INT_W:] = frac
        out[fast] = rows
    if slow.size:
        out[slow, :24] = v[slow].astype("S24").view(np.uint8).reshape(-1, 24)
    return out


class LineEncoder:
    """Line protocol for the batches of one `SeriesTable` (see the module docstring)."""

    def __init__(self, table: SeriesTable) -> None:
        heads: list[bytes] = []
        for s in range(len(table)):
            d = table.devices[int(table.device_index[s])]
            field = escape_key(table.metric[s]).encode()
            prefix = (f"{escape_measurement(d.kind)},device={escape_key(d.id)},"
                      f"site={escape_key(d.site)} ").encode()
            heads += [b"," + field + b"=", prefix + field + b"="]
        width = max((len(h) for h in heads), default=1)
        self._heads: U8M = (np.array(heads, dtype=f"S{width}").view(np.uint8)
                            .reshape(-1, width))
        self._device: npt.NDArray[np.int32] = table.device_index.astype(np.int32)

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
        order = np.lexsort((series, ts, dev))          # device, then time, then field
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
        m = np.zeros((n, head_w + _VALUE_W + _TAIL_W), dtype=np.uint8)
        m[:, :head_w] = self._heads[series.astype(np.intp) * 2 + new]
        m[:, head_w:head_w + _VALUE_W] = format_floats(value)
        t = ts[end]
        tail = np.zeros((len(end), _TAIL_W), dtype=np.uint8)
        tail[:, 0] = ord(" ")
        tail[:, 1] = np.where(t < 0, ord("-"), 0)
        tail[:, 2:2 + _TS_W] = _digits(np.abs(t), _TS_W)
        tail[:, -1] = ord("\n")
        m[end, head_w + _VALUE_W:] = tail
        return m[m != 0].tobytes()


def encode_naive(table: SeriesTable, batch: TelemetryBatch) -> bytes:
    """One f-string per reading and no grouping: the baseline `bench` compares against."""
    out = []
    for t, s, v, st in zip(batch.ts_ns.tolist(), batch.series.tolist(), batch.value.tolist(),
                           batch.status.tolist(), strict=True):
        if st == 0:
            d = table.devices[int(table.device_index[s])]
            out.append(f"{d.kind},device={d.id},site={d.site} {table.metric[s]}={v!r} {t}\n")
    return "".join(out).encode()


def bench(n: int = 100_000, *, decimals: int | None = 2, repeat: int = 5) -> dict[str, float]:
    """Readings/s and lines/s of `LineEncoder` vs `encode_naive` on the shipped registry:
    every device reports all its metrics each minute, values rounded to ``decimals``."""
    from devices.registry import default_registry_path, load_registry

    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    rng = np.random.default_rng(1)
    series = np.resize(np.arange(len(table), dtype=np.int32), n)
    ts = 1_700_000_000_000_000_000 + (np.arange(n) // len(table)) * 60_000_000_000
    value = rng.normal(100.0, 30.0, n)
    if decimals is not None:
        value = np.round(value, decimals)
    batch = TelemetryBatch.from_arrays(ts, series, value)
    enc = LineEncoder(table)

    def best(fn: object) -> tuple[float, bytes]:
        times, body = [], b""
        for _ in range(repeat):
            t0 = time.perf_counter()
            body = fn(batch)  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return min(times), body

    t_vec, body = best(enc.encode)
    t_naive, naive = best(lambda b: encode_naive(table, b))
    return {"readings": n, "lines": body.count(b"\n"), "vectorised_s": t_vec,
            "naive_s": t_naive, "vectorised_readings_per_s": n / t_vec,
            "vectorised_lines_per_s": body.count(b"\n") / t_vec,
            "naive_lines_per_s": naive.count(b"\n") / t_naive, "speedup": t_naive / t_vec}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m ingest.lineproto")
    p.add_argument("--bench", action="store_true", help="time the encoder against naive")
    p.add_argument("-n", type=int, default=100_000, help="readings per batch")
    args = p.parse_args(argv)
    if not args.bench:
        p.print_help()
        return
    for label, decimals in (("2-decimal values", 2), ("full-precision values", None)):
        r = bench(args.n, decimals=decimals)
        print(f"{label}: {r['readings']:.0f} readings -> {r['lines']:.0f} lines: vectorised "
              f"{r['vectorised_s'] * 1e3:.1f} ms ({r['vectorised_readings_per_s']:,.0f} "
              f"readings/s, {r['vectorised_lines_per_s']:,.0f} lines/s); naive "
              f"{r['naive_s'] * 1e3:.1f} ms ({r['naive_lines_per_s']:,.0f} lines/s); "
              f"speedup x{r['speedup']:.1f}")


if __name__ == "__main__":
    main()
