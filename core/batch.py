"""`TelemetryBatch`: the one thing that flows between ingest, processors, alerts and sinks."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import numpy.typing as npt

from core.reasons import Reason

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]

# Quality flags (bits of `TelemetryBatch.flags`): the reading is kept but marked. Stored as
# the field ``<metric>_q`` (the bits as a number) beside the reading when any is set.
FLAG_OUT_OF_RANGE = np.uint16(1 << 0)   # outside the metric's valid range (range_mode "flag")
FLAG_STUCK = np.uint16(1 << 8)          # flatline: unchanged for too long (processors.quality)
FLAG_SPIKE = np.uint16(1 << 9)          # a jump faster than physics allows (processors.quality)
FLAG_GAP = np.uint16(1 << 10)           # came after missed reports (processors.quality)
FLAG_ANOMALY = np.uint16(1 << 11)       # |EWMA z-score| at or above the threshold (anomaly)
FLAGS = {"out_of_range": FLAG_OUT_OF_RANGE, "stuck": FLAG_STUCK, "spike": FLAG_SPIKE,
         "gap": FLAG_GAP, "anomaly": FLAG_ANOMALY}


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """A struct of numpy arrays, one row per reading, all of the same length.

    - ``ts_ns``: the device's timestamp, nanoseconds since the Unix epoch (UTC).
    - ``series``: index into the registry's `SeriesTable` (device, metric and its metadata).
    - ``value``: the reading, float64.
    - ``flags``: quality bits (``FLAG_*``) on readings that are kept.
    - ``status``: a `Reason` code per row; ``0`` (OK) rows are stored, others are dead-lettered
      or (``DUPLICATE``) dropped as exact copies. Processors only ever raise a row's status
      from OK, never clear it.
    - ``origin``: which message in the current batch the row came from (``-1`` for rows a
      processor derived). Processors carry it along and must not interpret it.

    Batches are immutable in the sense that a processor returns a new batch (or the same one
    when it changed nothing); arrays are never resized in place.
    """

    ts_ns: I64
    series: I32
    value: F64
    flags: U16
    status: U8
    origin: I32

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        for name in ("series", "value", "flags", "status", "origin"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TelemetryBatch.{name} has {len(getattr(self, name))} rows, "
                                 f"ts_ns has {n}")

    @classmethod
    def from_arrays(cls, ts_ns: npt.ArrayLike, series: npt.ArrayLike, value: npt.ArrayLike,
                    *, origin: npt.ArrayLike | None = None) -> Self:
        """Build a batch with all rows OK and unflagged; arrays are converted to the row dtypes."""
        ts = np.asarray(ts_ns, dtype=np.int64)
        n = len(ts)
        return cls(
            ts_ns=ts,
            series=np.asarray(series, dtype=np.int32),
            value=np.asarray(value, dtype=np.float64),
            flags=np.zeros(n, dtype=np.uint16),
            status=np.zeros(n, dtype=np.uint8),
            origin=(np.full(n, -1, dtype=np.int32) if origin is None
                    else np.asarray(origin, dtype=np.int32)),
        )

    @classmethod
    def empty(cls) -> Self:
        return cls.from_arrays(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0))

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Mask of the rows that will be stored."""
        ok: npt.NDArray[np.bool_] = self.status == Reason.OK
        return ok

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> TelemetryBatch:
        """The rows selected by a mask or an index array, as a new batch."""
        return TelemetryBatch(self.ts_ns[rows], self.series[rows], self.value[rows],
                              self.flags[rows], self.status[rows], self.origin[rows])

    def with_status(self, mask: npt.NDArray[np.bool_], reason: Reason) -> TelemetryBatch:
        """A copy where rows in ``mask`` that are still OK get ``reason``; earlier ones stand."""
        hit = mask & (self.status == Reason.OK)
        if not hit.any():
            return self
        status = self.status.copy()
        status[hit] = np.uint8(reason)
        return replace(self, status=status)

    def with_values(self, value: F64) -> TelemetryBatch:
        return replace(self, value=value)

    def with_flags(self, mask: npt.NDArray[np.bool_], flag: np.uint16) -> TelemetryBatch:
        if not mask.any():
            return self
        flags = self.flags | np.where(mask, flag, np.uint16(0)).astype(np.uint16)
        return replace(self, flags=flags)

    @staticmethod
    def concat(batches: list[TelemetryBatch]) -> TelemetryBatch:
        if not batches:
            return TelemetryBatch.empty()
        return TelemetryBatch(*(np.concatenate([getattr(b, f) for b in batches])
                                for f in ("ts_ns", "series", "value", "flags", "status", "origin")))
