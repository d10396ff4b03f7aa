"""Rivers and rain: the flood-stage timeline, rate of rise, rain per gauge and accumulated, a
month from the 1-hour tier, and each gauge's level with its Waspada/Siaga/Awas bands from the
registry (those panels last, one per gauge in registry order)."""

from __future__ import annotations

from typing import Any

from grafana.board import Board
from grafana.influxql import Cond, Expr, Select
from grafana.panels import (
    FLOOD_STAGES,
    stage_steps,
    steps,
    timeline_panel,
    timeseries_panel,
    value_names,
)
from grafana.sources import Sources
from ingest import schema

UID = "pantau-rivers"
RIVER, RAIN = "river_gauge", "rain_gauge"
STAGE_PARAMS = (("waspada_cm", "yellow"), ("siaga_cm", "orange"), ("awas_cm", "red"))
MONTH = "30d"


def per_device(field: str, measurement: str, func: str = "mean", *, rp: str = "",
               where: tuple[Cond, ...] = (), outer: str = "", fill: str = "none") -> Select:
    return Select((Expr(field, func, outer=outer),), measurement=measurement, rp=rp,
                  where=where, group_by=(schema.DEVICE_TAG,), fill=fill)


def build(src: Sources) -> dict[str, Any]:
    kinds = [k for k in (RIVER, RAIN) if k in src.kinds()]
    b = Board(UID, "Pantau — Rivers and rain", tags=["rivers", "flood"], kinds=kinds,
              description="River levels against each gauge's flood stages, rate of rise and "
              "rain upstream.")
    if RIVER in kinds:
        river = src.measurement(RIVER)
        if src.has(RIVER, "flood_stage"):
            b.add(timeline_panel("Flood stage", [per_device("flood_stage", river, "max",
                                                           fill="previous")],
                                 mappings=value_names(FLOOD_STAGES), thresholds=stage_steps(),
                                 h=7, description="Normal, Waspada, Siaga, Awas per gauge, as "
                                 "the flood processor latches them (minimum duration and "
                                 "hysteresis)."))
        if src.has(RIVER, "level_rise_cm_h"):
            b.add(timeseries_panel("Rate of rise", [per_device("level_rise_cm_h", river)],
                                   unit="cm/h", description="Least-squares rise over the "
                                   "rise window; a fast rise precedes the stage."))
    if RAIN in kinds:
        rain = src.measurement(RAIN)
        mm = src.field(RAIN, "rain_mm")
        b.add(timeseries_panel("Rain per gauge", [per_device(mm, rain, "sum")], unit="lengthmm",
                               bars=True, w=12 if RIVER in kinds else 24),
              timeseries_panel("Rain accumulated", [per_device(mm, rain, "sum",
                                                               outer="cumulative_sum({})")],
                               unit="lengthmm", description="Since the start of the range."))
    b.row("Last 30 days (1-hour tier)")
    tier = src.tier_rp
    if RIVER in kinds:
        b.add(timeseries_panel("Level, hourly mean (30 days)", [per_device(
            src.tier(RIVER, "level_cm"), src.measurement(RIVER), rp=tier)], unit="lengthcm",
            time_from=MONTH, interval="1h"))
    if RAIN in kinds:
        hourly = Select((Expr(src.tier(RAIN, "rain_mm", "mean"), "", "r", outer="{} * {other}",
                              other=src.tier(RAIN, "rain_mm", "count")),),
                        measurement=src.measurement(RAIN), rp=tier, every="",
                        group_by=(schema.DEVICE_TAG,))
        b.add(timeseries_panel("Rain per day (30 days)", [Select(
            (Expr("r", "sum"),), source=hourly, every="1d", group_by=(schema.DEVICE_TAG,))],
            unit="lengthmm", bars=True, time_from=MONTH))
    if RIVER in kinds:
        b.row("Level per gauge, with its flood stages")
        level = src.field(RIVER, "level_cm")
        for d in src.devices(RIVER):
            bands = [(None, "transparent")] + [(d.params[p], c) for p, c in STAGE_PARAMS
                                               if p in d.params]
            b.add(timeseries_panel(d.name or d.id, [per_device(
                level, src.measurement(RIVER), where=(Cond(schema.DEVICE_TAG, d.id, "="),))],
                unit="lengthcm", w=8, bands=steps(*bands), alias=d.id,
                description=f"{d.id} ({d.site}): " + ", ".join(
                    f"{p.removesuffix('_cm').title()} {d.params[p]:g} cm"
                    for p, _ in STAGE_PARAMS if p in d.params)))
    return b.built()
