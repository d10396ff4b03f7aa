"""The frame every Pantau dashboard shares: uid, folder, time settings, the alert annotations,
panel placement and ids, and the JSON it becomes.

`Board` lays panels out left to right in rows of 24 grid units (the SDK's placement) and
numbers them in order when it is `built`, so ids and positions depend only on the order of
the panels: the dashboards put the panels generated per device last, so that a device added
at the end of the registry adds panels and changes nothing above them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from grafana.influxql import AnnotationTarget, Cond, Expr, Select
from grafana.panels import INFLUX
from ingest import schema

GRID = 24  # Grafana's grid is 24 columns wide
FOLDER_UID = "pantau"
FOLDER_TITLE = "Pantau"
REFRESH = "30s"


def alerts_annotation(kinds: Sequence[str] = ()) -> dash.AnnotationQuery:
    """Every alert state change (measurement `schema.ALERTS_MEASUREMENT`) of devices of
    ``kinds`` (all when empty) as an annotation on every time-series panel."""
    kind_tag = "kind"
    assert kind_tag in schema.ALERTS_TAGS
    state, value, message = schema.ALERTS_FIELDS
    where = (Cond(kind_tag, "(" + "|".join(kinds) + ")"),) if kinds else ()
    select = Select((Expr(message, ""), Expr(state, ""), Expr(value, "")),
                    measurement=schema.ALERTS_MEASUREMENT, where=where, every="")
    tags = tuple(t for t in schema.ALERTS_TAGS if t in ("alertname", "severity", "device"))
    return (dash.AnnotationQuery().name("Alerts").datasource(INFLUX).enable(True)
            .icon_color("red").target(AnnotationTarget(select, message, (state, *tags))))


class Board:
    """``Board(uid, title, tags).add(panel, ...).row("Title").add(...).built()``."""

    def __init__(self, uid: str, title: str, *, tags: Sequence[str] = (),
                 time_from: str = "now-24h", description: str = "", kinds: Sequence[str] = (),
                 annotations: bool = True) -> None:
        self.uid = uid
        self._d = (dash.Dashboard(title).uid(uid).tags(["pantau", *tags]).refresh(REFRESH)
                   .time(time_from, "now").timezone("browser").readonly()
                   .tooltip(model.DashboardCursorSync.CROSSHAIR))
        if description:
            self._d = self._d.description(description)
        if annotations:
            self._d = self._d.annotation(alerts_annotation(kinds))
        self._x = self._y = self._h = 0  # next free column, current line's top and height

    def variable(self, variable: cogbuilder.Builder[model.VariableModel]) -> Board:
        self._d = self._d.with_variable(variable)
        return self

    def link(self, title: str, url: str) -> Board:
        self._d = self._d.link(dash.DashboardLink(title).type(model.DashboardLinkType.LINK)
                               .url(url).keep_time(True))
        return self

    def add(self, *panels: cogbuilder.Builder[model.Panel]) -> Board:
        """Place each panel right of the previous one, or on a new line when it does not fit
        in what is left of the 24 columns."""
        for p in panels:
            built = p.build()
            pos = built.grid_pos or model.GridPos(h=8, w=12)
            if self._x + pos.w > GRID:
                self._x, self._y, self._h = 0, self._y + self._h, 0
            built.grid_pos = model.GridPos(h=pos.h, w=pos.w, x=self._x, y=self._y)
            self._d = self._d.with_panel(_Built(built))
            self._x, self._h = self._x + pos.w, max(self._h, pos.h)
        return self

    def row(self, title: str) -> Board:
        """A row header across the grid, below everything placed so far."""
        self._y += self._h
        self._d = self._d.with_row(dash.Row(title).grid_pos(model.GridPos(h=1, w=GRID, x=0,
                                                                            y=self._y)))
        self._x, self._y, self._h = 0, self._y + 1, 0
        return self

    def built(self) -> dict[str, Any]:
        """The dashboard as Grafana's JSON model, panels numbered 1, 2, ... in order."""
        doc: dict[str, Any] = json.loads(json.dumps(self._d.build(), cls=JSONEncoder))
        for i, panel in enumerate(doc.get("panels", []), start=1):
            panel["id"] = i
        doc.pop("id", None)
        return doc


class _Built(cogbuilder.Builder[model.Panel]):
    """An already built panel, handed back to the SDK's dashboard builder."""

    def __init__(self, panel: model.Panel) -> None:
        self._panel = panel

    def build(self) -> model.Panel:
        return self._panel
