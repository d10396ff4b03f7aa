"""Pantau's InfluxQL query type for grafana-foundation-sdk, which has no InfluxDB builder.

A panel query is a `Select`: what it reads (measurement, retention policy, fields) is data,
so the tests can hold every name against the write schema (`ingest.schema`) instead of
parsing text. `Select.text()` renders the InfluxQL Grafana's InfluxDB data source runs in raw
mode, with Grafana's macros left in place (``$timeFilter``, ``$__interval``, ``$device``);
`grafana.render.expand` replaces them as Grafana would. Identifiers are always double-quoted.

`InfluxQL` is the SDK builder of a panel target (``{"refId", "query", "rawQuery": true,
"resultFormat"}``, the shape Grafana saves for a raw InfluxQL query); `annotation_target`
the target of an InfluxQL annotation query (Grafana's migrated annotation shape: the query
plus the columns that become the text and the tags).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.runtime import DataqueryConfig, Runtime
from grafana_foundation_sdk.models import dashboard

from ingest.influx_query import q_ident, q_string

DATASOURCE_TYPE = "influxdb"


@dataclass(frozen=True, slots=True)
class Expr:
    """One selected value: ``func("field")`` (``func`` empty: the raw field), wrapped by
    ``outer`` (a format with ``{}``, e.g. ``non_negative_derivative({}, 1s)``; ``{other}`` is
    the quoted field ``other``, e.g. ``{} * {other}``), ``AS alias``."""

    field: str
    func: str = "mean"
    alias: str = ""
    outer: str = ""
    other: str = ""

    @property
    def wildcard(self) -> bool:
        """``*`` or a ``/regex/`` over field names: names no field itself."""
        return self.field == "*" or self.field.startswith("/")

    def text(self) -> str:
        name = self.field if self.wildcard else q_ident(self.field)
        out = f"{self.func}({name})" if self.func else name
        if self.outer:
            out = self.outer.format(out, other=q_ident(self.other) if self.other else "")
        return f"{out} AS {q_ident(self.alias)}" if self.alias else out


@dataclass(frozen=True, slots=True)
class Cond:
    """``"key" op value``: ``=~`` with a Grafana variable (``$device``) renders the regex
    Grafana expects, ``/^$device$/``; any other value is a quoted string."""

    key: str
    value: str
    op: str = "=~"
    tag: bool = True   # False: ``key`` is a field of the measurement

    def text(self) -> str:
        if self.op in ("=~", "!~"):
            return f"{q_ident(self.key)} {self.op} /^{self.value}$/"
        return f"{q_ident(self.key)} {self.op} {q_string(self.value)}"


@dataclass(frozen=True, slots=True)
class Select:
    """``SELECT exprs FROM [rp.]measurement | (subquery) WHERE conds AND $timeFilter
    GROUP BY [time($__interval),] tags [fill(...)]``.

    ``every``: the GROUP BY time interval (``$__interval``; empty: no time grouping);
    ``measurement_regex``: FROM a regex over measurement names (e.g. ``/^$kind$/``)."""

    exprs: tuple[Expr, ...]
    measurement: str = ""
    rp: str = ""
    source: Select | None = None
    where: tuple[Cond, ...] = ()
    group_by: tuple[str, ...] = ()
    every: str = "$__interval"
    fill: str = "none"
    time_filter: bool = True
    measurement_regex: str = ""

    def __post_init__(self) -> None:
        if sum(map(bool, (self.measurement, self.source, self.measurement_regex))) != 1:
            raise ValueError("a Select reads one measurement, regex or subquery")

    def text(self) -> str:
        if self.source is not None:
            src = f"({self.source.text()})"
        elif self.measurement_regex:
            src = f"/{self.measurement_regex}/"
        else:
            src = (f"{q_ident(self.rp)}." if self.rp else "") + q_ident(self.measurement)
        conds = [c.text() for c in self.where] + (["$timeFilter"] if self.time_filter else [])
        out = f"SELECT {', '.join(e.text() for e in self.exprs)} FROM {src}"
        if conds:
            out += " WHERE " + " AND ".join(conds)
        groups = ([f"time({self.every})"] if self.every else []) + [q_ident(t)
                                                                   for t in self.group_by]
        if groups:
            out += " GROUP BY " + ", ".join(groups)
        if self.every and self.fill:
            out += f" fill({self.fill})"
        return out

    def reads(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(retention policy, measurement, fields) of every measurement this query reads
        (a measurement regex reads `measurement_regex` and the fields its expressions name)."""
        if self.source is not None:
            return self.source.reads()
        names = tuple(e.field for e in self.exprs if not e.wildcard)
        names += tuple(e.other for e in self.exprs if e.other)
        names += tuple(c.key for c in self.where if not c.tag)
        return [(self.rp, self.measurement or self.measurement_regex, names)]


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of Grafana's InfluxDB data source."""

    def __init__(self, select: Select | None = None, ref_id: str = "A",
                 result_format: str = "time_series", alias: str = "",
                 datasource: dashboard.DataSourceRef | None = None,
                 query: str = "") -> None:
        self.select = select
        self.query = select.text() if select is not None else query
        self.ref_id, self.result_format, self.alias = ref_id, result_format, alias
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"refId": self.ref_id, "query": self.query,
                                  "rawQuery": True, "resultFormat": self.result_format}
        if self.alias:
            out["alias"] = self.alias
        if self.datasource is not None:
            out["datasource"] = self.datasource.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> InfluxQLQuery:
        ds = data.get("datasource")
        return cls(ref_id=data.get("refId", "A"), query=data.get("query", ""),
                   result_format=data.get("resultFormat", "time_series"),
                   alias=data.get("alias", ""),
                   datasource=dashboard.DataSourceRef.from_json(ds) if ds else None)


# Dashboards read back with the SDK (`Dashboard.from_json`) keep their InfluxQL targets typed.
Runtime().register_dataquery_variant(DataqueryConfig(DATASOURCE_TYPE, InfluxQLQuery.from_json))


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """``InfluxQL(select).ref_id("B").table().alias("$tag_device")``."""

    def __init__(self, select: Select) -> None:
        self._internal = InfluxQLQuery(select)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> typing.Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> typing.Self:
        self._internal.alias = alias
        return self

    def datasource(self, ref: dashboard.DataSourceRef) -> typing.Self:
        self._internal.datasource = ref
        return self


class InfluxQLAnnotationTarget(dashboard.AnnotationTarget):
    """The target of an InfluxQL annotation: ``text`` and ``tags`` name result columns."""

    def __init__(self, select: Select, text: str, tags: tuple[str, ...]) -> None:
        super().__init__(limit=100)
        self.select, self.text, self.tag_columns = select, text, tags

    def to_json(self) -> dict[str, object]:
        return {"refId": "Anno", "query": self.select.text(), "rawQuery": True,
                "fromAnnotations": True, "textColumn": self.text,
                "tagsColumn": ",".join(self.tag_columns), "limit": self.limit,
                "matchAny": False, "tags": [], "type": "tags"}


class AnnotationTarget(cogbuilder.Builder[dashboard.AnnotationTarget]):
    def __init__(self, select: Select, text: str, tags: tuple[str, ...]) -> None:
        self._internal = InfluxQLAnnotationTarget(select, text, tags)

    def build(self) -> dashboard.AnnotationTarget:
        return self._internal
