"""What `pantau devices recalibrate` would change: the plan, pure and testable offline.

`make_plan` compares the registry the data was written with (``old``) and the current one
(``new``) for one device and finds, per metric, the time segments where their dated
calibration disagrees (`differing_segments`); `recalibrated` maps stored values of a segment
from the old factors to the new ones. `ingest.recalibrate` reads and writes the points.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from core.errors import PantauError
from devices.calibration import CalibrationPeriod, factors
from devices.registry import Device, Metric, Registry, RegistryError, load_registry, parse_registry

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
