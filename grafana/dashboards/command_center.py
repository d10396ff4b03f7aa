"""Command center: the wall screen. Every device on the map coloured by its state, the active
alerts, devices online and offline per district, the flood stage of each river and the ISPU
of each air-quality station in the official colours."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as model

from grafana.board import Board
from grafana.influxql import Cond, Expr, Select
from grafana.panels import (
    FLOOD_STAGES,
    ONLINE,
    bargauge_panel,
    colour_props,
    geomap_panel,
    ispu_steps,
    stage_steps,
    stat_panel,
    steps,
    table_panel,
    value_names,
)
from grafana.sources import Sources
from ingest import schema

UID = "pantau-command-center"
GAZETTEER = "public/gazetteer/pantau-devices.json"
# The alert lifecycle's states as alerts/ writes them to field `state` (alerts.lifecycle);
# tests/grafana writes its events with the real lifecycle and writer.
LIFECYCLE_STATES = ("pending", "firing", "resolved", "inactive")


def latest(field: str, measurement: str, alias: str, *tags: str) -> Select:
    """The last value of ``field`` per device in the time range (one row per device)."""
    return Select((Expr(field, "last", alias),), measurement=measurement, every="",
                  group_by=(schema.DEVICE_TAG, *tags))


def online_latest(src: Sources, *tags: str) -> Select:
    return latest(src.pantau("device_online"), schema.PANTAU_MEASUREMENT, "online", *tags)


def river_gauges(src: Sources) -> dict[str, list[str]]:
    """River name -> its gauges (registry tag ``river``), in registry order."""
    out: dict[str, list[str]] = {}
    for d in src.devices("river_gauge"):
        out.setdefault(d.tags.get("river", d.id), []).append(d.id)
    return out


def active_alerts() -> Select:
    """Each alert's last lifecycle state (the panel keeps the firing ones). alerts/ writes
    ``state`` as a string: the lifecycle's `LIFECYCLE_STATES`, and also "acknowledged" and
    "escalated to tier N" events, which leave an alert firing and so are not read here."""
    state, value, message = schema.ALERTS_FIELDS
    lifecycle = Cond(state, "(" + "|".join(LIFECYCLE_STATES) + ")", tag=False)
    return Select((Expr(state, "last", state), Expr(value, "last", value),
                   Expr(message, "last", message)), measurement=schema.ALERTS_MEASUREMENT,
                  where=(lifecycle,), every="",
                  group_by=tuple(t for t in schema.ALERTS_TAGS if t != "kind"))


def build(src: Sources) -> dict[str, Any]:
    # The map centres on the sites (a device added at a known site moves nothing).
    places = src.registry.sites or src.registry.devices
    lat = round(sum(p.lat for p in places) / len(places), 3)
    lon = round(sum(p.lon for p in places) / len(places), 3)
    b = Board(UID, "Pantau — Command center", tags=["command-center"], time_from="now-3h",
              description="The wall screen: every device, the alerts, the rivers and the air.")
    layers = [("Devices (online / offline)", online_latest(src), "online")]
    overrides = [("online", colour_props(value_names(ONLINE), steps((None, "red"),
                                                                    (1.0, "green"))))]
    if "river_gauge" in src.kinds() and src.has("river_gauge", "flood_stage"):
        layers.append(("River gauges (flood stage)", latest("flood_stage", "river_gauge",
                                                             "stage"), "stage"))
        overrides.append(("stage", colour_props(value_names(FLOOD_STAGES), stage_steps())))
    if "air_quality" in src.kinds() and src.has("air_quality", "ispu"):
        layers.append(("Air quality (ISPU)", latest("ispu", "air_quality", "ispu"), "ispu"))
        overrides.append(("ispu", [model.DynamicConfigValue(id_val="thresholds",
                                                            value=ispu_steps().build()),
                                   model.DynamicConfigValue(id_val="color",
                                                            value={"mode": "thresholds"})]))
    b.add(geomap_panel("Devices", layers, gazetteer=GAZETTEER, lat=lat, lon=lon, zoom=10.5,
                       overrides=overrides, description="Every device of the registry at its "
                       "coordinates: green online, red offline; gauges by flood stage, "
                       "stations by ISPU."))
    per_site = Select((Expr("online", "sum", "online"), Expr("online", "count", "devices"),
                       Expr("online", "count", "offline", outer="{} - sum({other})",
                            other="online")),
                      source=online_latest(src, schema.SITE_TAG), every="",
                      group_by=(schema.SITE_TAG,))
    alerts = (table_panel("Active alerts", [active_alerts()], w=10, h=9,
                          description="Alerts firing now, acknowledged or escalated ones too "
                          "(their last lifecycle change in the past week; measurement "
                          "`alerts`).")
              .time_from("7d")
              .with_transformation(model.DataTransformerConfig(id_val="filterByValue", options={
                  "type": "include", "match": "any", "filters": [{
                      "fieldName": schema.ALERTS_FIELDS[0],
                      "config": {"id": "equal", "options": {"value": "firing"}}}]})))
    b.add(alerts, table_panel("Devices online per district", [per_site], w=10, h=9))
    b.row("Rivers and air")
    for river, gauges in river_gauges(src).items():
        each = Select((Expr(src.field("river_gauge", "flood_stage"), "last", "stage"),),
                      measurement=src.measurement("river_gauge"), every="",
                      group_by=(schema.DEVICE_TAG,),
                      where=(Cond(schema.DEVICE_TAG, "(" + "|".join(gauges) + ")"),))
        worst = Select((Expr("stage", "max", "stage"),), source=each, every="")
        b.add(stat_panel(river.title(), [worst], w=4, h=4, mappings=value_names(FLOOD_STAGES),
                         thresholds=stage_steps(),
                         description=f"Highest flood stage of its gauges: {', '.join(gauges)}"))
    if "air_quality" in src.kinds():
        b.add(bargauge_panel("ISPU per station", [latest(src.field("air_quality", "ispu"),
                                                         "air_quality", "ispu")],
                             w=12, h=8, thresholds=ispu_steps(), max_value=300,
                             description="Indeks Standar Pencemar Udara, P.14/2020 colours: "
                             "Baik, Sedang, Tidak Sehat, Sangat Tidak Sehat, Berbahaya."))
    return b.built()
