"""Re-apply corrected calibration to stored data (``pantau devices recalibrate``).

Pantau stores calibrated values: ``stored = raw * gain + offset`` with the factors in force at
the reading's device time (`devices.calibration`). When an operator adds or corrects a dated
period, data already stored for that period carries the old factors. Given the registry the
data was written with (``old``, e.g. ``git show HEAD~1:devices/data/blitar.yaml``) and the
current one (``new``), `make_plan` finds, per metric, the time segments where the two disagree
and refuses when there is none; `run` reads the stored points of those segments with InfluxQL
(``/query``, as ``influx.read_username``), computes ``(stored - o_old) / g_old * g_new + o_new``
per page with numpy and writes the same measurement, tags and timestamps back through the
ingest sink (as ``influx.username``): an overwrite of just those fields, other fields of the
line (derived values, flags) are left as they are.

Not idempotent by nature (a second run would apply the correction twice), so points are
handled in time order and a failure says up to which instant the data is corrected and how to
resume. Derived fields (flags, flood stage, z-scores) and tiers are not recomputed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from devices.calibration import CalibrationPeriod, factors
from devices.registry import Device, Metric, Registry, RegistryError, load_registry, parse_registry
from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from ingest.errors import PantauError, SinkError
from ingest.influx_query import InfluxQLReader, q_ident
from ingest.influx_sink import make_sink
from pantau.settings import InfluxSettings

END_NS = np.iinfo(np.int64).max          # an open-ended period or --until
_ALWAYS_NS = int(np.iinfo(np.int64).min)  # plain gain/offset: in force at every time
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class RecalibrationError(PantauError):
    """Nothing to correct, an unknown device or metric, or the database refused; the message
    says which, and after a partial run how to resume."""


def periods(m: Metric) -> tuple[CalibrationPeriod, ...]:
    """A metric's calibration as dated periods (plain ``gain``/``offset``: one, forever)."""
    return m.calibration or (CalibrationPeriod(_ALWAYS_NS, m.gain, m.offset),)


def recalibrated(ts_ns: I64, stored: F64, old: Sequence[CalibrationPeriod],
                 new: Sequence[CalibrationPeriod]) -> tuple[F64, npt.NDArray[np.bool_]]:
    """(values, changed): ``stored`` written under ``old`` re-expressed under ``new`` at each
    timestamp; where both give the same factors the value is returned untouched."""
    g0, o0 = factors(old, ts_ns)
    g1, o1 = factors(new, ts_ns)
    changed: npt.NDArray[np.bool_] = (g0 != g1) | (o0 != o1)
    return np.where(changed, (stored - o0) / g0 * g1 + o1, stored), changed


@dataclass(frozen=True, slots=True)
class Segment:
    """``[start_ns, end_ns)`` where the old registry says ``old`` and the new one ``new``."""

    start_ns: int
    end_ns: int
    old: tuple[float, float]
    new: tuple[float, float]


def differing_segments(old: Sequence[CalibrationPeriod], new: Sequence[CalibrationPeriod],
                       since_ns: int, until_ns: int = END_NS) -> tuple[Segment, ...]:
    """The parts of ``[since_ns, until_ns)`` where ``old`` and ``new`` give other factors."""
    cuts = sorted({since_ns, *(p.start_ns for p in (*old, *new) if since_ns < p.start_ns
                               < until_ns)})
    at = np.array(cuts, dtype=np.int64)
    (g0, o0), (g1, o1) = factors(old, at), factors(new, at)
    out: list[Segment] = []
    for i, start in enumerate(cuts):            # one step per period boundary, not per reading
        f_old, f_new = (float(g0[i]), float(o0[i])), (float(g1[i]), float(o1[i]))
        if f_old == f_new:
            continue
        end = cuts[i + 1] if i + 1 < len(cuts) else until_ns
        if out and out[-1].end_ns == start and (out[-1].old, out[-1].new) == (f_old, f_new):
            out[-1] = replace(out[-1], end_ns=end)
        else:
            out.append(Segment(start, end, f_old, f_new))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MetricPlan:
    metric: Metric                              # as in the new registry
    old: tuple[CalibrationPeriod, ...]
    new: tuple[CalibrationPeriod, ...]
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    device: Device                              # as in the new registry
    since_ns: int
    until_ns: int
    metrics: tuple[MetricPlan, ...]

    @property
    def span(self) -> tuple[int, int]:
        """The time range covering every segment to correct."""
        segs = [s for m in self.metrics for s in m.segments]
        return min(s.start_ns for s in segs), max(s.end_ns for s in segs)


def make_plan(old: Registry, new: Registry, device_id: str, metrics: Sequence[str],
              since_ns: int, until_ns: int = END_NS) -> Plan:
    """What to correct for ``device_id`` (``metrics``: all it has when empty) in
    ``[since_ns, until_ns)``; `RecalibrationError` when nothing differs."""
    d_new, d_old = new.device(device_id), old.device(device_id)
    where = f"device {device_id!r}"
    if d_new is None or d_old is None:
        raise RecalibrationError(f"{where} is not in {(new if d_new is None else old).source}")
    if d_old.kind != d_new.kind:
        raise RecalibrationError(f"{where}: kind changed from {d_old.kind!r} to {d_new.kind!r} "
                                 "(another measurement): not a calibration change")
    if since_ns >= until_ns:
        raise RecalibrationError(f"{where}: --since must be before --until")
    names = list(metrics) or [m.name for m in d_new.metrics if d_old.metric(m.name)]
    plans: list[MetricPlan] = []
    for name in names:
        m_new, m_old = d_new.metric(name), d_old.metric(name)
        if m_new is None or m_old is None:
            src = (new if m_new is None else old).source
            raise RecalibrationError(f"{where}: metric {name!r} is not in {src}")
        p_old, p_new = periods(m_old), periods(m_new)
        segs = differing_segments(p_old, p_new, since_ns, until_ns)
        if segs:
            plans.append(MetricPlan(m_new, p_old, p_new, segs))
        elif metrics:
            raise RecalibrationError(f"{where}: metric {name!r}: {old.source} and {new.source} "
                                     f"give the same calibration from {iso(since_ns)} to "
                                     f"{iso(until_ns)}: nothing to recalibrate")
    if not plans:
        raise RecalibrationError(f"{where}: {old.source} and {new.source} give the same "
                                 f"calibration for {', '.join(names)} from {iso(since_ns)} to "
                                 f"{iso(until_ns)}: nothing to recalibrate")
    return Plan(d_new, since_ns, until_ns, tuple(plans))


def parse_instant(text: str) -> int:
    """Epoch ns of ``YYYY-MM-DD`` (midnight UTC), an ISO date-time with a zone, or an integer
    of epoch nanoseconds (what a resume hint prints when microseconds are not exact)."""
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RecalibrationError(f"{text!r} is not an ISO date, date-time or epoch ns") from None
    if "T" not in text and " " not in text:
        t = t.replace(tzinfo=dt.UTC)
    if t.tzinfo is None:
        raise RecalibrationError(f"{text!r} has no zone: add Z or +07:00")
    return (int(t.timestamp()) * 10**6 + t.microsecond) * 1000


def iso(ns: int) -> str:
    """RFC 3339 UTC, exact to the microsecond; epoch ns when finer (see `parse_instant`)."""
    if ns >= END_NS:
        return "the end"
    if ns % 1000:
        return str(ns)
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    return t.isoformat(timespec="microseconds" if t.microsecond else "seconds").replace(
        "+00:00", "Z")


def load_old_registry(path: str) -> Registry:
    """The registry the stored data was written with; ``-`` reads it from stdin."""
    if path != "-":
        return load_registry(path)
    try:
        return parse_registry(YAML(typ="rt").load(sys.stdin.read()), source="<stdin>")
    except (YAMLError, ValueError) as e:
        raise RegistryError(f"<stdin>: not valid YAML: {e}") from e


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
