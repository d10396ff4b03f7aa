"""Air quality, Weather, Traffic and street lights, and the vaccine cold chain: one time series
per metric (a line per device), the latest values as a table, and a month of the 1-hour tier.
Panels whose field the configured chain does not write (EPA AQI under ISPU, say) are left
out. The fridge temperature is drawn over its bands (freezing, +2..+8, too warm)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as model

from grafana.board import Board
from grafana.influxql import Expr, Select
from grafana.panels import (
    CRITICAL_POLLUTANTS,
    ISPU_BANDS,
    bargauge_panel,
    ispu_steps,
    steps,
    table_panel,
    timeseries_panel,
    value_names,
)
from grafana.sources import Sources
from ingest import schema

MONTH = "30d"
# (kind, field, title, unit, aggregate) per dashboard, in display order.
Metric = tuple[str, str, str, str, str]
AIR: tuple[Metric, ...] = (
    ("air_quality", "ispu", "ISPU per station", "none", "max"),
    ("air_quality", "aqi", "US EPA AQI per station", "none", "max"),
    ("air_quality", "pm25", "PM2.5", "conμgm3", "mean"),
    ("air_quality", "pm10", "PM10", "conμgm3", "mean"),
    ("air_quality", "pm25_nowcast", "PM2.5 NowCast", "conμgm3", "mean"),
    ("air_quality", "pm25_ispu", "PM2.5 sub-index (24 h)", "none", "mean"),
    ("air_quality", "co", "CO", "conμgm3", "mean"),
    ("air_quality", "no2", "NO2", "conμgm3", "mean"),
    ("air_quality", "o3", "O3", "conμgm3", "mean"),
    ("air_quality", "so2", "SO2", "conμgm3", "mean"),
)
WEATHER: tuple[Metric, ...] = (
    ("weather_station", "temperature_c", "Temperature", "celsius", "mean"),
    ("weather_station", "humidity_pct", "Humidity", "humidity", "mean"),
    ("weather_station", "pressure_hpa", "Pressure", "pressurehpa", "mean"),
    ("weather_station", "wind_ms", "Wind speed", "velocityms", "mean"),
    ("weather_station", "wind_dir_deg", "Wind direction", "degree", "last"),
)
TRAFFIC: tuple[Metric, ...] = (
    ("traffic_counter", "vehicles", "Vehicles", "short", "sum"),
    ("traffic_counter", "avg_speed_kmh", "Average speed", "velocitykmh", "mean"),
    ("street_light", "power_w", "Street-light power", "watt", "mean"),
    ("street_light", "on", "Street lights on", "short", "last"),
    ("street_light", "fault", "Street lights with a fault", "short", "max"),
)
COLD_CHAIN: tuple[Metric, ...] = (
    ("cold_chain", "temperature_c", "Vaccine fridge temperature", "celsius", "mean"),
    ("cold_chain", "mains_on", "Mains power on", "short", "min"),
    ("cold_chain", "door_open", "Door open", "short", "max"),
    ("cold_chain", "battery_v", "Monitor backup battery", "volt", "mean"),
)
VACCINE_BANDS = ((None, "blue"), (2.0, "green"), (8.0, "red"))  # DOMAIN.md: +2 to +8 degC
BOARDS = {
    "pantau-air-quality": ("Pantau — Air quality", ["air-quality"], AIR),
    "pantau-weather": ("Pantau — Weather", ["weather"], WEATHER),
    "pantau-traffic": ("Pantau — Traffic and street lights", ["traffic", "street-lights"],
                       TRAFFIC),
    "pantau-cold-chain": ("Pantau — Vaccine cold chain", ["cold-chain"], COLD_CHAIN),
}


def per_device(field: str, measurement: str, func: str, rp: str = "") -> Select:
    return Select((Expr(field, func),), measurement=measurement, rp=rp,
                  group_by=(schema.DEVICE_TAG,))


def latest_table(src: Sources, kind: str, names: list[str]) -> Select:
    return Select(tuple(Expr(n, "last", n) for n in names), measurement=src.measurement(kind),
                  every="", group_by=(schema.DEVICE_TAG, schema.SITE_TAG))


def build(src: Sources, uid: str) -> dict[str, Any]:
    title, tags, metrics = BOARDS[uid]
    shown = [m for m in metrics if m[0] in src.kinds() and src.has(m[0], m[1])]
    kinds = list(dict.fromkeys(m[0] for m in shown))
    b = Board(uid, title, tags=tags, kinds=kinds)
    for kind, field, name, unit, func in shown:
        sel = per_device(src.field(kind, field), src.measurement(kind), func)
        if field in ("ispu", "aqi"):
            b.add(timeseries_panel(name, [sel], unit=unit, bands=ispu_steps()
                                   if field == "ispu" else None, description="ISPU bands in "
                                   "the P.14/2020 colours: " + ", ".join(
                                       f"{n} from {lo:g}" for lo, n, _ in ISPU_BANDS)))
        elif kind == "cold_chain" and field == "temperature_c":
            b.add(timeseries_panel(name, [sel], unit=unit, bands=steps(*VACCINE_BANDS),
                                   description="Vaccines keep at +2 to +8 °C; Dinkes is "
                                   "alerted after 60 min at or below -0.5 °C or 10 h above +8."))
        else:
            b.add(timeseries_panel(name, [sel], unit=unit, bars=func == "sum"))
    if "air_quality" in kinds and src.has("air_quality", "ispu_critical"):
        pollutants = [(p, "text") for p in CRITICAL_POLLUTANTS]
        b.add(table_panel("Critical pollutant per station", [latest_table(
            src, "air_quality", ["ispu", "ispu_critical"])],
            description="The pollutant whose sub-index is the ISPU (parameter kritis).")
            .override_by_name("ispu_critical", [model.DynamicConfigValue(
                id_val="mappings", value=value_names(pollutants))]))
        b.add(bargauge_panel("Air-quality readings without a sub-index (incomplete 24 h)", [
            Select((Expr(src.pantau("pantau_aqi_incomplete_total"), "last"),),
                   measurement=schema.PANTAU_MEASUREMENT, every="",
                   group_by=("pollutant", "average"))],
            thresholds=steps((None, "blue")), alias="$tag_pollutant $tag_average",
            description="Counted by Pantau since its start: an hour needs 75 % of the "
            "reports, an average 18 of 24 hours."))
    for kind in kinds:
        names = [m[1] for m in shown if m[0] == kind]
        b.add(table_panel(f"Latest values: {kind.replace('_', ' ')}",
                          [latest_table(src, kind, names)], w=24 if len(kinds) == 1 else 12))
    b.row("Last 30 days (1-hour tier)")
    for kind, field, name, unit, func in shown:
        if func != "last" and src.has_tier(kind, field):
            b.add(timeseries_panel(f"{name}, hourly mean (30 days)", [per_device(
                src.tier(kind, field), src.measurement(kind), "mean", rp=src.tier_rp)],
                unit=unit, time_from=MONTH, interval="1h", w=8))
    return b.built()
