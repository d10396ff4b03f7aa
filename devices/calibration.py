"""Calibration with validity dates: which gain/offset applied to a metric at which time.

A metric's ``calibration`` is a list of periods, oldest first, each valid from its ``from``
date until the next one's (the last is open-ended)::

    metrics:
      level_cm:
        calibration:
          - {from: 2026-01-01, gain: 1.0, offset: -12}
          - {from: 2026-03-15T09:00:00+07:00, gain: 0.98, offset: -10, note: "new sensor"}

``from`` is a date (midnight UTC) or a date-time with a zone. Readings before the first period
are uncalibrated (gain 1, offset 0). The newest period is the metric's ``gain``/``offset``, so
live ingest applies it; `factors` resolves the periods for any timestamps, which is what a
correction of past data (``pantau devices recalibrate``, a follow-up) needs: a stored value
``y`` written under ``(g0, o0)`` becomes ``(y - o0) / g0 * g1 + o1``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: ``fail(node, key, where, problem) -> Exception`` from the registry loader (file:line context).
Fail = Callable[[Any, str | int | None, str, str], Exception]


@dataclass(frozen=True, slots=True)
class CalibrationPeriod:
    """``stored = raw * gain + offset`` for readings with a device timestamp >= ``start_ns``."""

    start_ns: int
    gain: float
    offset: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.gain == 0 or not math.isfinite(self.gain) or not math.isfinite(self.offset):
            raise ValueError("gain must be finite and non-zero, offset finite")

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.start_ns / 1e9, dt.UTC)


def _instant(v: Any) -> int | None:
    """Epoch ns of a YAML date, date-time with a zone, or an ISO string; None when not one."""
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v) if "T" in v or " " in v else dt.date.fromisoformat(v)
        except ValueError:
            return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            return None
        return int(v.timestamp()) * 1_000_000_000 + v.microsecond * 1000
    if isinstance(v, dt.date):
        return int(dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC).timestamp()) * 10**9
    return None


def _number(fail: Fail, node: Mapping[str, Any], key: str, where: str, default: float) -> float:
    v = node.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise fail(node, key, where, f"field '{key}': {v!r} is not a finite number")
    return float(v)


def parse_calibration(fail: Fail, spec: Mapping[str, Any], where: str
                      ) -> tuple[CalibrationPeriod, ...]:
    """Validate the ``calibration:`` list of a metric ``spec`` (see the module docstring);
    errors go through ``fail`` and name the period (``calibration[1]``) and the field."""
    node = spec["calibration"]
    if not isinstance(node, Sequence) or isinstance(node, str):
        raise fail(spec, "calibration", where, "field 'calibration' must be a list of "
                   "{from, gain, offset} periods")
    periods: list[CalibrationPeriod] = []
    for i, p in enumerate(node):
        at = f"{where}: calibration[{i}]"
        if not isinstance(p, Mapping):
            raise fail(node, i, at, "must be a mapping {from, gain, offset}")
        unknown = sorted(str(k) for k in p if k not in ("from", "gain", "offset", "note"))
        if unknown:
            raise fail(p, unknown[0], at, f"unknown field '{unknown[0]}' "
                       "(expected from, gain, offset, note)")
        if "from" not in p:
            raise fail(p, None, at, "field 'from' is missing")
        start = _instant(p["from"])
        if start is None:
            raise fail(p, "from", at, f"field 'from': {str(p['from'])!r} is not a date "
                       "(YYYY-MM-DD) or a date-time with a zone")
        if periods and start <= periods[-1].start_ns:
            raise fail(p, "from", at, "field 'from': periods must be in increasing date order")
        gain = _number(fail, p, "gain", at, 1.0)
        if gain == 0:
            raise fail(p, "gain", at, "field 'gain': must be non-zero")
        periods.append(CalibrationPeriod(start, gain, _number(fail, p, "offset", at, 0.0),
                                         str(p.get("note", ""))))
    return tuple(periods)


def factors(periods: Sequence[CalibrationPeriod], ts_ns: npt.NDArray[np.int64]
            ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(gain, offset) in effect at each timestamp: vectorised over ``ts_ns`` (searchsorted)."""
    gain = np.array([1.0, *(p.gain for p in periods)])
    offset = np.array([0.0, *(p.offset for p in periods)])
    starts = np.array([p.start_ns for p in periods], dtype=np.int64)
    idx = np.searchsorted(starts, ts_ns, side="right")
    return gain[idx], offset[idx]
