"""Re-apply corrected calibration to stored data (``pantau devices recalibrate``).

Pantau stores calibrated values: ``stored = raw * gain + offset`` with the factors in force at
the reading's device time (`devices.calibration`). When an operator adds or corrects a dated
period, data already stored for that period carries the old factors. Given the registry the data
was written with (``old``, e.g. ``git show HEAD~1:devices/data/blitar.yaml``) and the current
one (``new``), `make_plan` (`devices.recalibrate_plan`) finds, per metric, the time segments
where the two disagree and refuses when there is none; `run` reads the stored points of those
segments with InfluxQL (``/query``, as ``influx.read_username``), computes ``(stored - o_old) /
g_old * g_new + o_new`` per page with numpy and writes the same measurement, tags and timestamps
back through the ingest sink (as ``influx.username``): an overwrite of just those fields, other
fields of the line (derived values, flags) are left as they are.

Not idempotent by nature (a second run would apply the correction twice), so points are handled
in time order and a failure says up to which instant the data is corrected and how to resume.
Derived fields (flags, flood stage, z-scores) and tiers are not recomputed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.batch import TelemetryBatch
from devices.recalibrate_plan import (
    END_NS,
    Plan,
    RecalibrationError,
    iso,
    recalibrated,
)
from devices.registry import Registry
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.influx_query import InfluxQLReader, q_ident
from ingest.influx_sink import make_sink
from ingest.settings import InfluxSettings


@dataclass(slots=True)
class Summary:
    total: int = 0                              # points to correct (counted first)
    done: int = 0                               # points corrected (or, dry run, that would be)
    writes: int = 0
    per_metric: dict[str, int] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)   # new value outside min/max
    examples: list[str] = field(default_factory=list)


Progress = Callable[[int, int], None]


def _range(start_ns: int, end_ns: int) -> str:
    return f"time >= {start_ns}" + (f" AND time < {end_ns}" if end_ns < END_NS else "")


async def run(plan: Plan, settings: InfluxSettings, *, dry_run: bool = False,
              page_size: int = 5000, progress: Progress | None = None,
              retries: int = 3) -> Summary:
    """Correct the stored points of ``plan`` (see the module docstring), ``page_size`` points
    per query and write, in time order; ``progress(done, total)`` after each page. With
    ``dry_run`` everything is read and computed, nothing written."""
    if settings.api != "v1":
        raise RecalibrationError("pantau devices recalibrate reads with InfluxQL over the 1.x "
                                 "/query API: influx.api = 'v2' is not supported yet")
    d, summary = plan.device, Summary()
    rp = f"{q_ident(settings.retention_policy)}." if settings.retention_policy else ""
    src, dev = f"{rp}{q_ident(d.kind)}", f"\"device\" = '{d.id}'"   # ids match ID_RE
    async with InfluxQLReader(settings) as reader:
        sites = await _count(reader, plan, src, dev, summary)
        if not summary.total:
            return summary
        # One registry entry per site tag found, so a device that moved is written back
        # under the tags its points already have.
        table = SeriesTable.from_registry(Registry(
            sites=(), devices=tuple(replace(d, site=s) for s in sorted(sites))))
        ids = {(table.devices[int(table.device_index[i])].site, table.metric[i]): i
               for i in range(len(table))}
        lo, hi = plan.span
        select = ", ".join(q_ident(mp.metric.name) for mp in plan.metrics)
        cursor = lo
        async with make_sink(settings, table) as sink:
            while True:
                rows = [v for s in await reader.series(
                    f"SELECT {select}, \"site\" FROM {src} WHERE {dev} AND {_range(cursor, hi)} "
                    f"ORDER BY time ASC LIMIT {page_size}") for v in s["values"]]
                if not rows:
                    break
                cols = list(zip(*rows, strict=True))
                ts = np.array(cols[0], dtype=np.int64)
                full = len(rows) == page_size
                # A full page may end inside a timestamp shared by several sites: its last
                # instant is left to the next page, which starts there.
                keep = ts < ts[-1] if full else np.ones(len(ts), dtype=bool)
                if not keep.any():
                    raise RecalibrationError(f"more than {page_size} points at "
                                             f"{iso(int(ts[-1]))}: raise --page-size")
                uniq, inv = np.unique(np.array(cols[-1], dtype=str), return_inverse=True)
                parts: list[TelemetryBatch] = []
                for k, mp in enumerate(plan.metrics):
                    name = mp.metric.name
                    stored = np.array(cols[1 + k], dtype=np.float64)   # None (no field): NaN
                    value, changed = recalibrated(ts, stored, mp.old, mp.new)
                    rows_k = np.flatnonzero(keep & changed & ~np.isnan(stored))
                    if not rows_k.size:
                        continue
                    if set(uniq[np.unique(inv[rows_k])]) - sites:
                        raise RecalibrationError(f"device {d.id!r}: a site tag appeared while "
                                                 "running (points written meanwhile?): run "
                                                 "again from " + iso(cursor))
                    series = np.array([ids.get((u, name), -1) for u in uniq])[inv[rows_k]]
                    new = value[rows_k]
                    parts.append(TelemetryBatch.from_arrays(ts[rows_k], series, new))
                    summary.per_metric[name] += int(rows_k.size)
                    summary.out_of_range[name] += int(np.count_nonzero(
                        (new < mp.metric.min) | (new > mp.metric.max)))
                    summary.examples += [f"{name} at {iso(int(ts[i]))}: {float(stored[i])!r}"
                                         f" -> {float(value[i])!r}" for i in rows_k[:2]
                                         if len(summary.examples) < 6]
                batch = TelemetryBatch.concat(parts)
                if len(batch) and not dry_run:
                    await _write(sink.write, batch, retries, summary, cursor)
                    summary.writes += 1
                summary.done += len(batch)
                if progress is not None:
                    progress(summary.done, summary.total)
                if not full:
                    break
                cursor = int(ts[-1])
    return summary


async def _count(reader: InfluxQLReader, plan: Plan, src: str, dev: str,
                 summary: Summary) -> set[str]:
    """Count the points to correct into ``summary``; return the site tags they carry."""
    sites: set[str] = set()
    for mp in plan.metrics:
        summary.per_metric[mp.metric.name] = summary.out_of_range[mp.metric.name] = 0
        for seg in mp.segments:
            q = (f"SELECT count({q_ident(mp.metric.name)}) FROM {src} WHERE {dev} AND "
                 f"{_range(seg.start_ns, seg.end_ns)} GROUP BY *")
            for s in await reader.series(q):
                tags = {k: v for k, v in s.get("tags", {}).items() if v}
                if set(tags) != {"device", "site"}:
                    raise RecalibrationError(
                        f"device {plan.device.id!r}: stored series {tags} has tags Pantau "
                        "does not write (only device and site): an overwrite could not hit it")
                sites.add(tags["site"])
                summary.total += sum(int(v[1]) for v in s["values"])
    return sites


async def _write(write: Callable[[TelemetryBatch], Any], batch: TelemetryBatch, retries: int,
                 summary: Summary, cursor: int) -> None:
    """Write one page, retrying what may succeed later: rewriting the same computed values
    is harmless, only reading them back again would correct twice."""
    for attempt in range(retries):
        try:
            await write(batch)
            return
        except SinkError as e:
            if e.retryable and attempt + 1 < retries:
                await asyncio.sleep(e.retry_after or 0.5 * 2**attempt)
                continue
            partial = "" if e.retryable else (" A refused write may have stored part of its "
                                              "page: check those points before running again.")
            if not summary.done:
                raise RecalibrationError(f"{e}. Nothing was rewritten: the same command may "
                                         f"run again.{partial}") from e
            raise RecalibrationError(
                f"{e}. Stopped after {summary.done} of {summary.total} points: points before "
                f"{iso(cursor)} are corrected, the rest are not; finish with the same command "
                f"and --since {iso(cursor)}.{partial}") from e
