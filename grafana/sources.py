"""What the dashboards may read: the registry and, from the write schema (`ingest.schema`),
every measurement and field Pantau writes with the configured processor chain.

`Sources.field` is how a dashboard names a field: it raises `GrafanaError` for a field the
schema does not list, so a dashboard can never query something nobody writes (a renamed metric
breaks the export, not the wall screen). Panels that only make sense when a processor runs
(EPA AQI, windows) ask `Sources.has` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import devices
import ingest
from core.errors import PantauError
from core.metrics import collect_help
from devices.registry import Device, Registry
from devices.series import SeriesTable
from ingest import schema, self_metrics
from ingest.settings import InfluxSettings
from processors import ProcessorContext, build_chain
from processors.settings import ProcessorSettings

# The 1-hour tier, as InfluxQL addresses it: a retention policy on 1.x; on 2.x the DBRP
# mapping deploy/influxdb/init.sh creates gives the tier bucket this same retention policy name.
HOUR_S = 3600


class GrafanaError(PantauError):
    """A dashboard cannot be built, exported or pushed; the message says why."""


def pantau_help() -> dict[str, tuple[str, str]]:
    """Every metric of the devices and ingest packages, which Pantau's self-metrics writer
    (`ingest.self_metrics`) copies to the ``pantau`` measurement."""
    return {**collect_help(devices), **collect_help(ingest)}


@dataclass(frozen=True, slots=True)
class Sources:
    registry: Registry
    fields: Mapping[str, tuple[str, ...]]          # measurement -> fields (raw + derived)
    tier_fields: Mapping[str, tuple[str, ...]]     # measurement -> tier fields
    pantau_fields: tuple[str, ...]
    tier_rp: str = field(default_factory=lambda: schema.tier_target(InfluxSettings(), HOUR_S))

    @classmethod
    def build(cls, registry: Registry, processors: tuple[str, ...] | None = None,
              settings: ProcessorSettings | None = None,
              more_metrics: Mapping[str, tuple[str, str]] | None = None) -> Sources:
        """From a registry and the processor chain ``ingest.processors`` names.
        ``more_metrics``: the help of metrics counted by packages this layer does not import
        (``alerts/``'s: the composition root passes them, `pantau.grafana_cli.sources`);
        Pantau's self-metrics writer copies those to the ``pantau`` measurement too."""
        from ingest.settings import IngestSettings
        names = processors if processors is not None else IngestSettings().processors
        table = SeriesTable.from_registry(registry)
        try:
            chain = build_chain(names, ProcessorContext(table, "reject",
                                                        settings or ProcessorSettings()))
        except PantauError as e:
            raise GrafanaError(f"cannot build the processor chain: {e}") from e
        full = chain.table or table
        return cls(registry, schema.fields(full), schema.tier_fields(full),
                   self_metrics.fields({**pantau_help(), **(more_metrics or {})}))

    def kinds(self) -> list[str]:
        """Device kinds in registry order."""
        return list(dict.fromkeys(d.kind for d in self.registry.devices))

    def devices(self, kind: str) -> list[Device]:
        return [d for d in self.registry.devices if d.kind == kind]

    def has(self, kind: str, name: str) -> bool:
        return name in self.fields.get(schema.measurement(kind), ())

    def measurement(self, kind: str) -> str:
        if schema.measurement(kind) not in self.fields:
            raise GrafanaError(f"no device of kind {kind!r} in {self.registry.source}")
        return schema.measurement(kind)

    def field(self, kind: str, name: str) -> str:
        """``name`` when Pantau writes it for devices of ``kind``, else `GrafanaError`."""
        if not self.has(kind, name):
            raise GrafanaError(f"a dashboard reads field {name!r} of {kind!r}, which Pantau "
                               "does not write with this registry and processor chain")
        return name

    def has_tier(self, kind: str, metric: str) -> bool:
        return schema.tier_field(metric, "mean") in self.tier_fields.get(
            schema.measurement(kind), ())

    def tier(self, kind: str, metric: str, stat: str = "mean") -> str:
        name = schema.tier_field(metric, stat)
        if name not in self.tier_fields.get(schema.measurement(kind), ()):
            raise GrafanaError(f"no tier field {name!r} for {kind!r}")
        return name

    def has_pantau(self, metric: str, stat: str = "") -> bool:
        """Whether Pantau writes this metric of its own (the alerts' only when the composition
        root passed them, `Sources.build`)."""
        return self_metrics.field(metric, stat) in self.pantau_fields

    def pantau(self, metric: str, stat: str = "") -> str:
        """The ``pantau`` measurement's field of a metric (``pantau_readings_written_total``)."""
        name = self_metrics.field(metric, stat)
        if not self.has_pantau(metric, stat):
            raise GrafanaError(f"Pantau does not write its metric {metric!r} ({name!r})")
        return name
