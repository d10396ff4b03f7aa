"""``pantau bench --lineproto``: the vectorised line protocol encoder (`ingest.lineproto`)
against a naive one (one f-string per reading), on the shipped registry, in process.

Every device reports all its metrics each minute; values rounded to 2 decimals (what most
sensors send) and at full float64 precision (the slowest case for the shortest round-trip
digits). Prints the best of ``--repeat`` runs of each: milliseconds, lines (the encoder writes
one line per device and timestamp, the naive one a line per reading), readings/s, lines/s and
the speedup.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from core.batch import TelemetryBatch
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.lineproto import LineEncoder
from ingest.schema import device_tags, measurement

T0 = 1_700_000_000_000_000_000
MINUTE = 60_000_000_000


def encode_naive(table: SeriesTable, batch: TelemetryBatch) -> bytes:
    """One f-string per reading and no grouping: the baseline `bench` compares against."""
    out = []
    for t, s, v, st in zip(batch.ts_ns.tolist(), batch.series.tolist(), batch.value.tolist(),
                           batch.status.tolist(), strict=True):
        if st == 0:
            d = table.devices[int(table.device_index[s])]
            tags = "".join(f",{k}={v}" for k, v in device_tags(d))
            out.append(f"{measurement(d.kind)}{tags} {table.metric[s]}={v!r} {t}\n")
    return "".join(out).encode()


def bench(n: int = 100_000, *, decimals: int | None = 2, repeat: int = 5) -> str:
    """`LineEncoder` vs `encode_naive`, best of ``repeat``, on the shipped registry: every
    device reports all its metrics each minute, values rounded to ``decimals``."""
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    value = np.random.default_rng(1).normal(100.0, 30.0, n)
    batch = TelemetryBatch.from_arrays(
        T0 + (np.arange(n) // len(table)) * MINUTE,
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pantau bench --lineproto", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--readings", type=int, default=100_000,
                   help="readings per batch (default 100000)")
    p.add_argument("--repeat", type=int, default=5, help="runs of each, the best counts "
                   "(default 5)")
    a = p.parse_args(argv)
    for decimals in (2, None):
        print(bench(a.readings, decimals=decimals, repeat=a.repeat), flush=True)
    return 0
