"""Rebuild the processors' state from the readings stored in InfluxDB (the warm-up).

The state snapshot (``<state_dir>/processors.npz``) is the fast path; this is the way back when
it cannot serve: it is missing (a new host, a wiped volume), or it belongs to another registry
(a device was added), or it is older than the data (a kill -9 between two checkpoints).

How: per device kind (= measurement), the raw metric fields of the series some step keeps
state for are read back with InfluxQL, in time order, page by page, from ``now`` minus the
longest history a step needs for them (`processors.Chain.lookback_s`: the flood rise window, 24 h
of pollutants for the air-quality averages, the EWMA's memory, the open tier bucket, ...,
capped by ``processors.warmup_max_s``), and replayed through the stateful steps
(`processors.Chain.replay`); what they derive again is dropped, it is stored already.
`WarmupReport.readings` counts what was read back; the steps apply only what they lack. Before
that, a step may seed its state from the last stored value of a derived field before the
window (`FloodStage.seeds`: a stage latched days ago stays latched by its hysteresis).

``catch_up`` (after a snapshot was restored): no seeding, and per kind the replay starts at the
oldest "latest reading" the snapshot holds for the kind's series (`processors.Chain.seen_ts`;
never earlier than the window above): every reading processed after the snapshot is newer than
that, and the steps skip what the snapshot already saw (a reading at or before a series'
latest timestamp never advances state twice). So a kill -9 between two snapshots loses no
state, whatever the device timestamps of the readings acknowledged in between.

Stored values are calibrated and range-checked already, so the stateless steps are skipped.
A reading stored with a device timestamp older than the window is not replayed.

Cancellation: every query is a point where the task running `warm_up` can be cancelled
(`pantau.app` cancels it when asked to stop: a 24 h replay can take longer than the stop
grace time). The chain is then half-replayed, and its state must never be saved: restored
next time, it would pass for complete. So the caller stops before the pipeline's writer runs
(its checkpoints are where state is saved); the next start restores the previous snapshot, if
any, and warms up again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.batch import TelemetryBatch
from ingest.influx_query import InfluxQLReader, q_ident
from ingest.schema import DEVICE_TAG, derived_field, measurement
from processors import Chain

log = logging.getLogger("pantau.warmup")

S = 1_000_000_000


@dataclass
class WarmupReport:
    readings: int = 0
    queries: int = 0
    seeded: dict[str, int] = field(default_factory=dict)
    per_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


async def warm_up(chain: Chain, reader: InfluxQLReader, *, now_ns: int, max_s: float,
                  retention_policy: str = "", catch_up: bool = False,
                  page_size: int = 20_000,
                  progress: Callable[[str], None] = log.info) -> WarmupReport:
    """Replay stored readings into ``chain`` (see the module docstring). Raises
    `ingest.influx_query.QueryError` when a query fails (the caller decides to go on)."""
    t0 = time.perf_counter()
    table = chain.table
    report = WarmupReport()
    if not chain.stateful:
        return report
    need = np.minimum(chain.lookback_s(), max_s)
    rp = f"{q_ident(retention_policy)}." if retention_policy else ""
    kinds = sorted({d.kind for d in table.devices})
    device_kind = np.array([table.devices[i].kind for i in table.device_index[:table.raw]])
    seen = chain.seen_ts() if catch_up else None
    try:
        for kind in kinds:
            of_kind = device_kind == kind
            series = np.flatnonzero(of_kind & (need > 0))
            if not len(series):
                continue
            fields = sorted({table.metric[s] for s in series})
            start = now_ns - int(need[series].max() * S)
            if seen is not None:  # NEVER (a series the snapshot never saw) keeps the window
                start = max(start, int(seen[series].min()))
            src = f"{rp}{q_ident(measurement(kind))}"
            if not catch_up:
                await _seed(chain, reader, src, of_kind, start, report)
            n = await _replay(chain, reader, src, fields, start, page_size, report)
            report.per_kind[kind] = n
            devices = len({int(table.device_index[s]) for s in series})
            progress(f"warm-up: {kind}: {n:,} stored readings of {devices} devices replayed "
                     f"({', '.join(fields)}; from {(now_ns - start) / S / 3600:.2f} h ago)")
    finally:  # also after a failed query: what was replayed stays, its outputs go
        chain.replayed(catch_up=catch_up)
        report.seconds = time.perf_counter() - t0
    return report


async def _seed(chain: Chain, reader: InfluxQLReader, src: str, of_kind: npt.NDArray[np.bool_],
                start: int, report: WarmupReport) -> None:
    """Seed the steps from the last stored value of each derived field they name, for the
    devices of one kind (``of_kind``: a mask over the raw series)."""
    table = chain.table
    index = {d.id: i for i, d in enumerate(table.devices)}
    for name, steps in chain.seeds().items():
        ids = table.derived.get((name, False))
        if ids is None or not (ids[:table.raw] >= 0)[of_kind].any():
            continue
        answer = await reader.series(f"SELECT last({q_ident(derived_field(name))}) FROM {src} "
                                     f"WHERE time < {start} GROUP BY {q_ident(DEVICE_TAG)}")
        report.queries += 1
        found = [(index[s["tags"][DEVICE_TAG]], s["values"][0][1]) for s in answer
                 if s.get("tags", {}).get(DEVICE_TAG) in index and s["values"]]
        if not found:
            continue
        device = np.array([f[0] for f in found], np.int32)
        value = np.array([f[1] for f in found], np.float64)
        for step in steps:
            step.seed(name, device, value)
        report.seeded[name] = report.seeded.get(name, 0) + len(found)


def _floats(cols: list[tuple[object, ...]]) -> npt.NDArray[np.float64]:
    """Field columns as a (rows, fields) float matrix: None (no such field on that line) is
    NaN, and so is a value that is not a number (a field another writer stored as a string)."""
    try:
        return np.array(cols, np.float64).T
    except (TypeError, ValueError):
        return np.array([[v if isinstance(v, (int, float)) else np.nan for v in c]
                         for c in cols], np.float64).T


async def _replay(chain: Chain, reader: InfluxQLReader, src: str, fields: list[str],
                  start: int, page_size: int, report: WarmupReport) -> int:
    """Page through ``fields`` of ``src`` from ``start`` in time order; replay each page."""
    table = chain.table
    select = ", ".join(q_ident(f) for f in fields)
    cursor, done = start, 0
    while True:
        rows = [v for s in await reader.series(
            f"SELECT {q_ident(DEVICE_TAG)}, {select} FROM {src} WHERE time >= {cursor} "
            f"ORDER BY time ASC LIMIT {page_size}") for v in s["values"]]
        report.queries += 1
        if not rows:
            return done
        cols = list(zip(*rows, strict=True))
        ts = np.array(cols[0], np.int64)
        full = len(rows) == page_size
        # a full page may end inside a timestamp: its last instant starts the next page
        keep = ts < ts[-1] if full else np.ones(len(ts), bool)
        if not keep.any():
            page_size *= 2  # more rows at one instant than a page holds
            continue
        names, inv = np.unique(np.array(cols[1], dtype=str), return_inverse=True)
        # series id per (device found, field); -1 where the field is not a raw metric of it
        sid = np.array([[table.lookup.get(str(d), {}).get(f, -1) for f in fields]
                        for d in names], np.int64).reshape(len(names), len(fields))
        value = _floats(cols[2:])
        series = sid[inv]
        ok = keep[:, None] & (series >= 0) & np.isfinite(value)
        r, k = np.nonzero(ok)
        batch = TelemetryBatch.from_arrays(ts[r], series[r, k], value[r, k])
        chain.replay(batch)
        done += len(batch)
        report.readings += len(batch)
        if not full:
            return done
        cursor = int(ts[-1])
