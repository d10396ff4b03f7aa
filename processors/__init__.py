"""Processors: pure, vectorised steps over a whole `TelemetryBatch`.

Contract of every processor: ``process(batch) -> batch`` is pure with respect to I/O and
time (no sockets, files or clock reads; time arrives as data), works on whole arrays (no
Python loop per reading), never clears a row's ``status`` once set and keeps ``origin``
aligned with its rows. One module per processor; `PROCESSORS` is the explicit registry that
``ingest.processors`` in the settings names.

What a processor offers beyond that is stated by the small Protocols it implements
(`processors.domain.capabilities`): `Deriving` (``derives()``: the derived metrics it may
produce, so the series table gives them ids up front), `Stateful` (``step(batch) -> Output``
with derived values and tiers, ``state()`` / ``restore()``), `Deferring`, `Replayable`,
`ReplayAware`, `Seeded` and `Counting`. A `Chain` runs them all (`processors.domain.chain`):
`Chain.run` returns the readings, the derived rows ready to be written beside them and the
tiers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from devices.series import DerivedMetric, SeriesTable
from processors.anomaly import Anomaly
from processors.aqi import AirQuality
from processors.calibration import Calibration
from processors.dedupe import Dedupe
from processors.domain.capabilities import Deriving, Processor
from processors.domain.chain import QUALITY, Chain, Processed, ProcessorError
from processors.flood import FloodStage
from processors.quality import Quality
from processors.range_check import RangeCheck
from processors.settings import ProcessorSettings
from processors.tiers import Tiers
from processors.windows import Windows

__all__ = ["PROCESSORS", "QUALITY", "Chain", "Processed", "Processor", "ProcessorContext",
           "ProcessorError", "build_chain"]


@dataclass(frozen=True, slots=True)
class ProcessorContext:
    """What a processor may be built from: the series table and the relevant settings."""

    table: SeriesTable
    range_mode: str = "reject"
    settings: ProcessorSettings = field(default_factory=ProcessorSettings)


def _windows(ctx: ProcessorContext) -> Windows:
    s = ctx.settings
    return Windows(ctx.table, windows_s=s.windows_s, stats=s.window_stats,
                   metrics=s.window_metrics or None)


def _flood(ctx: ProcessorContext) -> FloodStage:
    s = ctx.settings
    return FloodStage(ctx.table, hysteresis_cm=s.flood_hysteresis_cm,
                      min_duration_s=s.flood_min_duration_s, rise_window_s=s.flood_rise_window_s)


def _anomaly(ctx: ProcessorContext) -> Anomaly:
    s = ctx.settings
    return Anomaly(ctx.table, alpha=s.anomaly_alpha, threshold=s.anomaly_threshold,
                   warmup=s.anomaly_warmup, metrics=s.anomaly_metrics or None)


def _aqi(ctx: ProcessorContext) -> AirQuality:
    s = ctx.settings
    return AirQuality(ctx.table, standard=s.aqi_standard, pm25_table=s.aqi_pm25_table,
                      max_age_s=s.aqi_max_age_s)


ProcessorFactory = Callable[[ProcessorContext], Processor]

PROCESSORS: dict[str, ProcessorFactory] = {
    "calibration": lambda ctx: Calibration(ctx.table),
    "range_check": lambda ctx: RangeCheck(ctx.table, mode=ctx.range_mode),
    "dedupe": lambda ctx: Dedupe(),
    "windows": _windows,
    "flood": _flood,
    "quality": lambda ctx: Quality(ctx.table, gap_factor=ctx.settings.quality_gap_factor),
    "anomaly": _anomaly,
    "aqi": _aqi,
    "tiers": lambda ctx: Tiers(ctx.table, resolutions_s=ctx.settings.tiers_s,
                                refresh=ctx.settings.tiers_refresh),
}


def build_chain(names: Sequence[str], ctx: ProcessorContext) -> Chain:
    unknown = [n for n in names if n not in PROCESSORS]
    if unknown:
        raise ProcessorError(f"unknown processor(s) {', '.join(unknown)} in ingest.processors; "
                             f"known: {', '.join(sorted(PROCESSORS))}")
    steps = [PROCESSORS[n](ctx) for n in names]
    raw = ctx.table.raw
    metrics = [DerivedMetric(QUALITY, True, np.ones(raw, bool))]
    for p in steps:
        if isinstance(p, Deriving):
            metrics += p.derives()
    try:
        table = ctx.table.with_derived(metrics)
    except ValueError as e:
        raise ProcessorError(f"processor chain {', '.join(names)}: {e}") from e
    return Chain(steps, table, names)
