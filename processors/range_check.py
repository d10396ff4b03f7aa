"""Valid-range check per series (registry ``min``/``max``, after calibration).

``mode="reject"`` marks out-of-range rows `Reason.OUT_OF_RANGE` (dead-lettered with the
message); ``mode="flag"`` keeps them with `FLAG_OUT_OF_RANGE` set.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.batch import FLAG_OUT_OF_RANGE, TelemetryBatch
from core.reasons import Reason
from devices.series import SeriesTable


@dataclass(frozen=True, slots=True)
class RangeCheck:
    table: SeriesTable
    mode: str = "reject"

    def __post_init__(self) -> None:
        if self.mode not in ("reject", "flag"):
            raise ValueError(f"range_check mode must be 'reject' or 'flag', not {self.mode!r}")

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        if len(batch) == 0:
            return batch
        s = batch.series
        bad = (batch.value < self.table.vmin[s]) | (batch.value > self.table.vmax[s])
        if self.mode == "reject":
            return batch.with_status(bad, Reason.OUT_OF_RANGE)
        return batch.with_flags(bad & batch.ok, FLAG_OUT_OF_RANGE)
