"""Processors: pure, vectorised steps over a whole `TelemetryBatch`.

Contract of every processor: ``process(batch) -> batch`` is pure with respect to I/O and
time (no sockets, files or clock reads; time arrives as data), works on whole arrays (no
Python loop per reading), never clears a row's ``status`` once set and keeps ``origin``
aligned with its rows. One module per processor; `PROCESSORS` is the explicit registry that
``ingest.processors`` in the settings names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from devices.series import SeriesTable
from ingest.batch import TelemetryBatch
from ingest.errors import PantauError
from processors.anomaly import Anomaly
from processors.aqi import AirQuality
from processors.calibration import Calibration
from processors.dedupe import Dedupe
from processors.flood import FloodStage
from processors.quality import Quality
from processors.range_check import RangeCheck
from processors.tiers import Tiers
from processors.windows import Windows


class Processor(Protocol):
    def process(self, batch: TelemetryBatch) -> TelemetryBatch: ...


@dataclass(frozen=True, slots=True)
class ProcessorContext:
    """What a processor may be built from: the series table and the relevant settings."""

    table: SeriesTable
    range_mode: str = "reject"


ProcessorFactory = Callable[[ProcessorContext], Processor]

PROCESSORS: dict[str, ProcessorFactory] = {
    "calibration": lambda ctx: Calibration(ctx.table),
    "range_check": lambda ctx: RangeCheck(ctx.table, mode=ctx.range_mode),
    "dedupe": lambda ctx: Dedupe(),
    "windows": lambda ctx: Windows(ctx.table),
    "flood": lambda ctx: FloodStage(ctx.table),
    "quality": lambda ctx: Quality(ctx.table),
    "anomaly": lambda ctx: Anomaly(ctx.table),
    "aqi": lambda ctx: AirQuality(ctx.table),
    "tiers": lambda ctx: Tiers(ctx.table),
}


class ProcessorError(PantauError):
    """A processor chain names an unknown processor."""


@dataclass(frozen=True, slots=True)
class Chain:
    """Processors applied in order; itself a `Processor`."""

    steps: tuple[Processor, ...]

    def process(self, batch: TelemetryBatch) -> TelemetryBatch:
        for step in self.steps:
            batch = step.process(batch)
        return batch


def build_chain(names: Sequence[str], ctx: ProcessorContext) -> Chain:
    unknown = [n for n in names if n not in PROCESSORS]
    if unknown:
        raise ProcessorError(f"unknown processor(s) {', '.join(unknown)} in ingest.processors; "
                             f"known: {', '.join(sorted(PROCESSORS))}")
    return Chain(tuple(PROCESSORS[n](ctx) for n in names))
