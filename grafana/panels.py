"""Panel makers shared by the dashboards: one look for each kind of panel, Pantau's data sources,
the official colours of the flood stages and the ISPU categories.

Every maker takes the queries as `grafana.influxql.Select` (refIds A, B, ... in order) and
returns an SDK builder sized ``w`` x ``h`` grid units; the dashboard places it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from grafana_foundation_sdk.builders import (
    bargauge,
    geomap,
    stat,
    statetimeline,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import text as text_model

from grafana.influxql import DATASOURCE_TYPE, InfluxQL, Select

INFLUX_UID = "pantau-influxdb"
ALERTMANAGER_UID = "pantau-alertmanager"
INFLUX = model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=INFLUX_UID)

# Flood stages as the flood processor writes them (0..3), in the colours BPBD posts use.
FLOOD_STAGES = (("Normal", "green"), ("Waspada", "yellow"), ("Siaga", "orange"),
                ("Awas", "red"))
# ISPU categories, P.14/MENLHK/SETJEN/KUM.1/7/2020 (lower bound of each band, name, colour).
ISPU_BANDS = ((0.0, "Baik", "green"), (51.0, "Sedang", "blue"), (101.0, "Tidak Sehat", "yellow"),
              (201.0, "Sangat Tidak Sehat", "red"), (301.0, "Berbahaya", "#000000"))
CRITICAL_POLLUTANTS = ("PM2.5", "PM10", "SO2", "CO", "O3", "NO2", "HC")  # ispu_critical 0..6
ONLINE = (("offline", "red"), ("online", "green"))

Builder = cogbuilder.Builder[model.Panel]


def targets(selects: Sequence[Select], *, table_format: bool = False,
            alias: str = "") -> list[cogbuilder.Builder[object]]:
    out: list[cogbuilder.Builder[object]] = []
    for i, s in enumerate(selects):
        q = InfluxQL(s).ref_id(chr(ord("A") + i)).datasource(INFLUX)
        if table_format:
            q = q.table()
        if alias:
            q = q.alias(alias)
        out.append(q)
    return out


def value_names(names: Sequence[tuple[str, str]]) -> list[model.ValueMapping]:
    """Map 0, 1, 2, ... to (text, colour)."""
    return [model.ValueMap(options={str(i): model.ValueMappingResult(text=t, color=c, index=i)
                                    for i, (t, c) in enumerate(names)})]


def steps(*pairs: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in pairs])


def stage_steps() -> dash.ThresholdsConfig:
    return steps(*((None if i == 0 else float(i), c) for i, (_, c) in enumerate(FLOOD_STAGES)))


def ispu_steps() -> dash.ThresholdsConfig:
    return steps(*((None if lo == 0 else lo, c) for lo, _, c in ISPU_BANDS))


def timeseries_panel(title: str, selects: Sequence[Select], *, unit: str = "", w: int = 12,
                     h: int = 8, alias: str = "$tag_device", description: str = "",
                     bands: dash.ThresholdsConfig | None = None, bars: bool = False,
                     time_from: str = "", interval: str = "") -> timeseries.Panel:
    """A time series; ``bands`` are drawn as coloured areas (flood stages, ISPU bands)."""
    p = (timeseries.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets(selects, alias=alias))  # type: ignore[arg-type]
         .legend(VizLegendOptions().show_legend(True)
                 .display_mode(common.LegendDisplayMode.LIST)
                 .placement(common.LegendPlacement.BOTTOM)))
    if unit:
        p = p.unit(unit)
    if description:
        p = p.description(description)
    if bands is not None:
        p = p.thresholds(bands).thresholds_style(
            GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE_AND_AREA))
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if time_from:
        p = p.time_from(time_from)
    if interval:
        p = p.interval(interval)
    return p


def stat_panel(title: str, selects: Sequence[Select], *, w: int = 6, h: int = 4,
               unit: str = "", mappings: list[model.ValueMapping] | None = None,
               thresholds: dash.ThresholdsConfig | None = None, alias: str = "",
               description: str = "") -> stat.Panel:
    p = (stat.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets(selects, alias=alias))  # type: ignore[arg-type]
         .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .color_mode(common.BigValueColorMode.BACKGROUND)
         .graph_mode(common.BigValueGraphMode.NONE))
    if unit:
        p = p.unit(unit)
    if mappings:
        p = p.mappings(mappings)
    if thresholds is not None:
        p = p.thresholds(thresholds)
    if description:
        p = p.description(description)
    return p


def bargauge_panel(title: str, selects: Sequence[Select], *, w: int = 12, h: int = 8,
                   thresholds: dash.ThresholdsConfig, unit: str = "",
                   max_value: float | None = None, description: str = "",
                   alias: str = "$tag_device") -> bargauge.Panel:
    p = (bargauge.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets(selects, alias=alias))  # type: ignore[arg-type]
         .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .display_mode(common.BarGaugeDisplayMode.BASIC).min(0).thresholds(thresholds))
    if max_value is not None:
        p = p.max(max_value)
    if unit:
        p = p.unit(unit)
    if description:
        p = p.description(description)
    return p


def table_panel(title: str, selects: Sequence[Select], *, w: int = 12, h: int = 8,
                mappings: list[model.ValueMapping] | None = None,
                description: str = "") -> table.Panel:
    """A table of the queries' rows (InfluxQL ``table`` format: tags become columns)."""
    p = (table.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets(selects, table_format=True)))  # type: ignore[arg-type]
    if mappings:
        p = p.mappings(mappings)
    if description:
        p = p.description(description)
    return p


def timeline_panel(title: str, selects: Sequence[Select], *, w: int = 24, h: int = 8,
                   mappings: list[model.ValueMapping], thresholds: dash.ThresholdsConfig,
                   description: str = "") -> statetimeline.Panel:
    p = (statetimeline.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets(selects, alias="$tag_device"))  # type: ignore[arg-type]
         .mappings(mappings).thresholds(thresholds).show_value(common.VisibilityMode.NEVER))
    if description:
        p = p.description(description)
    return p


def text_panel(title: str, markdown: str, *, w: int = 24, h: int = 3) -> text.Panel:
    return (text.Panel().title(title).height(h).span(w).mode(text_model.TextMode.MARKDOWN)
            .content(markdown))


def geomap_panel(title: str, layers: Sequence[tuple[str, Select, str]], *, gazetteer: str,
                 lat: float, lon: float, zoom: float, w: int = 14, h: int = 18,
                 overrides: Sequence[tuple[str, list[model.DynamicConfigValue]]] = (),
                 description: str = "") -> geomap.Panel:
    """Markers at each device's coordinates, looked up by its ``device`` column in the
    registry's gazetteer; one layer per (name, table query, field that colours it)."""
    map_layers = [
        common.MapLayerOptions(
            type_val="markers", name=name, tooltip=True,
            location=common.FrameGeometrySource(mode=common.FrameGeometrySourceMode.LOOKUP,
                                                lookup="device", gazetteer=gazetteer),
            filter_data={"id": "byRefId", "options": chr(ord("A") + i)},
            config={"showLegend": True, "style": {
                "color": {"field": colour, "fixed": "dark-green"},
                "size": {"fixed": 6 + 2 * i}, "opacity": 0.9,
                "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"}}})
        for i, (name, _, colour) in enumerate(layers)]
    p = (geomap.Panel().title(title).datasource(INFLUX).height(h).span(w)
         .targets(targets([s for _, s, _ in layers], table_format=True))  # type: ignore[arg-type]
         # the SDK types these as int; Grafana reads any number (a map centre needs decimals)
         .view(geomap.MapViewConfig().id("coords").lat(cast(int, lat)).lon(cast(int, lon))
               .zoom(cast(int, zoom)))
         .basemap(_Layer(common.MapLayerOptions(type_val="default", name="Basemap")))
         .layers([_Layer(layer) for layer in map_layers]))
    for name, props in overrides:
        p = p.override_by_name(name, props)
    if description:
        p = p.description(description)
    return p


class _Layer(cogbuilder.Builder[common.MapLayerOptions]):
    def __init__(self, layer: common.MapLayerOptions) -> None:
        self._layer = layer

    def build(self) -> common.MapLayerOptions:
        return self._layer


def colour_props(mappings: list[model.ValueMapping], thresholds: dash.ThresholdsConfig
                 ) -> list[model.DynamicConfigValue]:
    return [model.DynamicConfigValue(id_val="mappings", value=mappings),
            model.DynamicConfigValue(id_val="thresholds", value=thresholds.build()),
            model.DynamicConfigValue(id_val="color", value={"mode": "thresholds"})]
