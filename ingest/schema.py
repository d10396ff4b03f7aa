"""What Pantau writes to InfluxDB, decided in one place: measurements, tags, field names, tier
targets and window labels. The line protocol encoder, the sinks, the warm-up, the docs and the
dashboards ask this module; none of them spells a name itself.

The points of a device (`TAGS` ``device`` and ``site``, `device_tags`; time = the device's
timestamp):

- measurement `measurement` (the device's kind, e.g. ``river_gauge``);
- one float field per raw metric the device declares (``level_cm``);
- derived fields beside the readings (`derived_field`): per source series
  ``<metric>_<name>`` (``level_cm_zscore``; the quality flags `quality_field` ``<metric>_q``),
  or per device ``<name>`` (``flood_stage``, ``ispu``); rolling windows are named with
  `window_label` (``level_cm_mean_5m``);
- `fields` lists, per measurement, every field name the chain's series table may write.

Tiers (downsampled rows, timestamped at the bucket start): the same measurement and tags, fields
``<metric>_<stat>`` for each stat of `TIER_FIELDS` (`tier_field`, `tier_fields`), into the
retention policy (v1) or bucket (v2) named by `tier_target`.

Pantau's own measurements, written by the packages that raise them: `ALERTS_MEASUREMENT`
(alert events on the charts) and `PANTAU_MEASUREMENT` (Pantau's own counters).

Field names of derived series are given ids by the series table
(`devices.series.SeriesTable.with_derived`, one floor below, which spells the same rule);
`tests/ingest/test_schema.py` keeps the two in agreement.
"""

from __future__ import annotations

from devices.registry import Device
from devices.series import SeriesTable
from ingest.settings import InfluxSettings
from processors import QUALITY
from processors.windows import window_label

__all__ = ["ALERTS_FIELDS", "ALERTS_MEASUREMENT", "ALERTS_TAGS", "DEVICE_TAG",
           "PANTAU_MEASUREMENT", "SITE_TAG", "TAGS", "TIER_FIELDS", "derived_field", "device_tags",
           "fields", "measurement", "quality_field", "tier_field", "tier_fields", "tier_setup",
           "tier_target", "window_label"]

DEVICE_TAG = "device"
SITE_TAG = "site"
#: The tags of every device point, in the order they are written.
TAGS = (DEVICE_TAG, SITE_TAG)

#: The stats of a tier row (each an attribute of `processors.domain.derived.Tier`).
TIER_FIELDS = ("mean", "min", "max", "count")

#: Alert events (written by ``alerts/``): one point per state change of an alert.
ALERTS_MEASUREMENT = "alerts"
ALERTS_TAGS = ("alertname", "severity", DEVICE_TAG, SITE_TAG, "kind")
ALERTS_FIELDS = ("state", "value", "message")

#: Pantau's own counters written to InfluxDB (for the pipeline's health dashboard).
PANTAU_MEASUREMENT = "pantau"


def measurement(kind: str) -> str:
    """The measurement of a device of ``kind``: the kind itself."""
    return kind


def device_tags(device: Device) -> tuple[tuple[str, str], ...]:
    """The (tag, value) pairs of ``device``'s points, in `TAGS` order."""
    return (DEVICE_TAG, device.id), (SITE_TAG, device.site)


def derived_field(name: str, *, of: str | None = None) -> str:
    """The field of a derived value ``name``: ``<metric>_<name>`` when derived per source series
    (``of`` the metric: ``derived_field("zscore", of="level_cm")``), else (a device-level
    value such as ``flood_stage``) ``name`` itself."""
    return name if of is None else f"{of}_{name}"


def quality_field(metric: str) -> str:
    """The field holding the quality flags of ``metric``'s readings (when any flag is set)."""
    return derived_field(QUALITY, of=metric)


def tier_field(metric: str, stat: str) -> str:
    """The tier field of ``metric`` for ``stat`` (one of `TIER_FIELDS`): ``level_cm_mean``."""
    if stat not in TIER_FIELDS:
        raise ValueError(f"tier stat must be one of {TIER_FIELDS}, not {stat!r}")
    return f"{metric}_{stat}"


def fields(table: SeriesTable) -> dict[str, tuple[str, ...]]:
    """Per measurement, every field Pantau may write for it, sorted: the raw metrics and the
    derived ones (quality included) of ``table`` (the chain's table, `processors.Chain.table`)."""
    out: dict[str, set[str]] = {}
    for s, name in enumerate(table.metric):
        kind = table.devices[int(table.device_index[s])].kind
        out.setdefault(measurement(kind), set()).add(name)
    return {m: tuple(sorted(names)) for m, names in sorted(out.items())}


def tier_fields(table: SeriesTable) -> dict[str, tuple[str, ...]]:
    """Per measurement, every field a tier row may hold (``<raw metric>_<stat>``), sorted."""
    out: dict[str, set[str]] = {}
    for s in range(table.raw):
        kind = table.devices[int(table.device_index[s])].kind
        out.setdefault(measurement(kind), set()).update(
            tier_field(table.metric[s], st) for st in TIER_FIELDS)
    return {m: tuple(sorted(names)) for m, names in sorted(out.items())}


def tier_target(settings: InfluxSettings, resolution_s: int) -> str:
    """Retention policy (v1: ``tier_1m``, same database) or bucket (v2: ``<bucket>_1m``) of
    the tier of ``resolution_s`` seconds."""
    label = window_label(resolution_s)
    return f"{settings.bucket}_{label}" if settings.api == "v2" else f"tier_{label}"


def tier_setup(settings: InfluxSettings, resolution_s: int) -> str:
    """How to create the tier's target (what an operator with admin rights runs once)."""
    target = tier_target(settings, resolution_s)
    if settings.api == "v2":
        return f"influx bucket create --org {settings.org} --name {target} --retention 0"
    return f'CREATE RETENTION POLICY "{target}" ON "{settings.database}" DURATION INF REPLICATION 1'
