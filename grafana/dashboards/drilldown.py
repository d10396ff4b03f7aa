"""Device drill-down: pick a kind, a site and a device (variables filled by ``SHOW TAG VALUES``),
see every value it sends and Pantau derives, its last seen, battery, quality flags, z-scores,
and the readings Pantau rejected (by reason, all devices)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model

from grafana.board import Board
from grafana.influxql import Cond, Expr, Select
from grafana.panels import INFLUX, ONLINE, stat_panel, steps, timeseries_panel, value_names
from grafana.sources import Sources
from ingest import schema

UID = "pantau-device"
VARIABLES = ("kind", "site", "device")
ONE = (Cond(schema.DEVICE_TAG, "$device"),)


def _variable(name: str, query: str, regex: str = "") -> dash.QueryVariable:
    v = (dash.QueryVariable(name).label(name.title()).datasource(INFLUX).query(query)
         .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
         .sort(model.VariableSort.ALPHABETICAL_ASC))
    return v.regex(regex) if regex else v


def variables(src: Sources) -> list[dash.QueryVariable]:
    """kind = a measurement that holds devices; site and device narrow by tag values."""
    kinds = "|".join(schema.measurement(k) for k in src.kinds())
    site, dev = schema.SITE_TAG, schema.DEVICE_TAG
    return [_variable("kind", "SHOW MEASUREMENTS", f"/^({kinds})$/"),
            _variable("site", f'SHOW TAG VALUES FROM /^$kind$/ WITH KEY = "{site}"'),
            _variable("device", f'SHOW TAG VALUES FROM /^$kind$/ WITH KEY = "{dev}" WHERE '
                      f'"{site}" =~ /^$site$/')]


def regex_fields(suffix: str, func: str = "max") -> Select:
    """Every field of the device ending in ``suffix`` (derived fields of each metric)."""
    return Select((Expr(f"/{suffix}$/", func),), measurement_regex="^$kind$", where=ONE)


def build(src: Sources) -> dict[str, Any]:
    b = Board(UID, "Pantau — Device", tags=["device"], time_from="now-6h",
              description="One device: its values, status, battery and data quality.")
    for v in variables(src):
        b.variable(v)
    online = src.pantau("device_online")
    seen = src.pantau("device_seen_age_s")
    pantau = schema.PANTAU_MEASUREMENT
    b.add(stat_panel("Status", [Select((Expr(online, "last"),), measurement=pantau,
                                       where=ONE, every="")],
                     mappings=value_names(ONLINE), thresholds=steps((None, "red"),
                                                                    (1.0, "green"))),
          stat_panel("Last heard", [Select((Expr(seen, "last"),), measurement=pantau,
                                           where=ONE, every="")], unit="s",
                     thresholds=steps((None, "green"), (600.0, "orange"), (3600.0, "red")),
                     description="Seconds since Pantau last heard from the device."))
    battery = [k for k in src.kinds() if src.has(k, "battery_v")]
    if battery:
        b.add(stat_panel("Battery", [Select((Expr("battery_v", "last"),),
                                            measurement_regex="^$kind$", where=ONE, every="")],
                         unit="volt", thresholds=steps((None, "red"), (11.5, "orange"),
                                                       (12.0, "green")),
                         description="Devices of kinds without a battery show no value."))
    b.add(timeseries_panel("Every value (readings and derived)", [Select(
        (Expr("*", "mean"),), measurement_regex="^$kind$", where=ONE)], alias="", w=24, h=10))
    b.add(timeseries_panel("Quality flags", [regex_fields(schema.quality_field(""))], alias="",
                           description="Bits: 1 out of range, 256 stuck, 512 spike, 1024 gap, "
                           "2048 anomaly."),
          timeseries_panel("Anomaly z-score", [regex_fields(schema.derived_field("zscore", of=""),
                                                            "mean")], alias=""))
    rejected = src.pantau("pantau_readings_rejected_total")
    b.add(timeseries_panel("Dead letters, all devices (per minute, by reason)", [Select(
        (Expr(rejected, "last", outer="non_negative_derivative({}, 1m)"),),
        measurement=pantau, group_by=("reason", "instance"))], alias="$tag_reason", w=24,
        description="Per-device dead letters: `GET /api/devices/<id>` and the dead-letter "
        "file (`<state_dir>/deadletter.jsonl`)."))
    return b.built()
