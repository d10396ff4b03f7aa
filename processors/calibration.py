"""Linear calibration per series: ``stored = raw * gain + offset`` (registry metric fields)."""

from __future__ import annotations

from dataclasses import dataclass

from core.batch import TelemetryBatch
from devices.series import SeriesTable


@dataclass(frozen=True, slots=True)
class Calibration:
    table: SeriesTable

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        if len(batch) == 0:
            return batch
        s = batch.series
        return batch.with_values(batch.value * self.table.gain[s] + self.table.offset[s])
