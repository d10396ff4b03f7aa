"""The device registry: a YAML file that says which devices exist and what they send.

Layout (see ``devices/data/blitar.yaml`` for a full example)::

    sites:            # where devices stand; the site id is part of every MQTT topic
      - {id: kanigoro, name: Kanigoro, lat: -8.13, lon: 112.21}
    kinds:            # metric defaults per device kind; a device may override any field
      river_gauge:
        interval_s: 60
        metrics:
          level_cm: {unit: cm, min: 0, max: 1500}
    devices:
      - {id: wl-brantas-01, kind: river_gauge, site: kanigoro, lat: -8.13, lon: 112.21}

Every metric has ``unit``, an optional valid range ``min``/``max`` and a linear calibration
``gain``/``offset`` (stored = raw * gain + offset). Load errors name the file, the line, the
device and the field (`devices.registry_yaml`).

A file is read with the lean loader (`devices.registry_yaml.lean_document`: plain objects from
the C parser's events, ~0.1 s per 1,000 devices and nothing left behind) and, only when that
finds it invalid or unusual, again with ruamel's round-trip loader, whose line numbers the
error messages quote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from devices.calibration import CalibrationPeriod, parse_calibration
from devices.device_fields import parse_device_fields
from devices.registry_yaml import NAME_RE, Checker, NotLean, RegistryError, lean_document

__all__ = ["Device", "Metric", "Registry", "RegistryError", "Site", "default_registry_path",
           "load_registry", "parse_registry"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    min: float = -math.inf
    max: float = math.inf
    gain: float = 1.0
    offset: float = 0.0
    # Dated periods (devices.calibration); when given, gain/offset are the newest period's.
    calibration: tuple[CalibrationPeriod, ...] = ()

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match {NAME_RE.pattern}")
        if not self.min <= self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.gain == 0 or not math.isfinite(self.gain) or not math.isfinite(self.offset):
            raise ValueError("gain must be finite and non-zero, offset finite")


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str
    site: str
    lat: float
    lon: float
    interval_s: float
    metrics: tuple[Metric, ...]
    name: str = ""
    # Free-form numeric parameters used by processors and rules (e.g. a river gauge's
    # `reference_height_cm`, `waspada_cm`, `siaga_cm`, `awas_cm`).
    params: Mapping[str, float] = field(default_factory=dict)
    owner: str = ""
    contact: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)  # see devices.device_fields

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)


@dataclass(frozen=True, slots=True)
class Registry:
    sites: tuple[Site, ...]
    devices: tuple[Device, ...]
    source: str = "<memory>"
    _by_id: dict[str, Device] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {d.id: d for d in self.devices})

    def device(self, device_id: str) -> Device | None:
        return self._by_id.get(device_id)


# Shared by every device without params or tags: at 100,000 devices two empty dicts each
# are 13 MB. Read-only, so sharing it is safe; a Registry is never pickled.
_NONE: Mapping[str, Any] = MappingProxyType({})


def load_registry(path: str | Path) -> Registry:
    """Read and validate a registry file; raise `RegistryError` naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RegistryError(f"{path}: cannot read the device registry: {e.strerror}") from e
    try:
        return parse_registry(lean_document(text), source=str(path))
    except (NotLean, YAMLError, ValueError, RegistryError):
        pass  # the round-trip loader handles it, or says what is wrong and on which line
    try:
        doc = YAML(typ="rt").load(text)
    except (YAMLError, ValueError) as e:  # ValueError: e.g. a date like 2026-13-01
        raise RegistryError(f"{path}: not valid YAML: {e}") from e
    return parse_registry(doc, source=str(path))


def _metric(ctx: Checker, name: str, spec: Any, base: Metric | None, where: str) -> Metric:
    where = f"{where}: metric '{name}'"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.fail(spec, None, where, f"name must match {NAME_RE.pattern}")
    spec = ctx.mapping(spec if spec is not None else {}, None, where)
    unit = spec.get("unit", base.unit if base else None)
    if not isinstance(unit, str):
        raise ctx.fail(spec, "unit", where, "field 'unit' is missing or not a string")
    cal = base.calibration if base and not {"gain", "offset"} & set(spec) else ()
    if "calibration" in spec:
        if "gain" in spec or "offset" in spec:
            raise ctx.fail(spec, "calibration", where, "give either 'calibration' periods or "
                           "'gain'/'offset', not both")
        cal = parse_calibration(ctx.fail, spec, where)
    try:
        return Metric(
            name=name, unit=unit,
            min=ctx.number(spec, "min", where, default=base.min if base else -math.inf),
            max=ctx.number(spec, "max", where, default=base.max if base else math.inf),
            gain=cal[-1].gain if cal else ctx.number(spec, "gain", where,
                                                     default=base.gain if base else 1.0),
            offset=cal[-1].offset if cal else ctx.number(spec, "offset", where,
                                                         default=base.offset if base else 0.0),
            calibration=cal,
        )
    except ValueError as e:
        raise ctx.fail(spec, None, where, str(e)) from e


def _params(ctx: Checker, d: Mapping[str, Any], where: str) -> dict[str, float]:
    node = ctx.mapping(d.get("params") or {}, None, f"{where}: params")
    out: dict[str, float] = {}
    for k in node:
        if not isinstance(k, str) or not NAME_RE.match(k):
            raise ctx.fail(node, None, f"{where}: params",
                           f"name {k!r} must match {NAME_RE.pattern}")
        out[k] = ctx.number(node, k, f"{where}: params")
    return out


def parse_registry(doc: Any, *, source: str = "<memory>") -> Registry:
    """Validate an already-parsed YAML document (see `load_registry`)."""
    ctx = Checker(source)
    doc = ctx.mapping(doc, None, "registry")
    sites: list[Site] = []
    for i, s in enumerate(doc.get("sites") or []):
        s = ctx.mapping(s, None, f"sites[{i}]")
        sid = ctx.ident(s, "id", f"sites[{i}]")
        where = f"site '{sid}'"
        sites.append(Site(sid, str(s.get("name", sid)), ctx.number(s, "lat", where, lo=-90, hi=90),
                          ctx.number(s, "lon", where, lo=-180, hi=180)))
    site_by_id = {s.id: s for s in sites}
    site_ids = site_by_id.keys()
    if len(site_ids) != len(sites):
        raise ctx.fail(doc, "sites", "sites", "site ids must be unique")

    kinds: dict[str, tuple[float | None, dict[str, Metric]]] = {}
    kinds_node = ctx.mapping(doc.get("kinds") or {}, None, "kinds")
    for kname, kspec in kinds_node.items():
        where = f"kind '{kname}'"
        if not isinstance(kname, str) or not NAME_RE.match(kname):
            raise ctx.fail(kinds_node, kname, where, f"kind name must match {NAME_RE.pattern}")
        kspec = ctx.mapping(kspec, None, where)
        interval = (ctx.number(kspec, "interval_s", where, lo=0.001)
                    if "interval_s" in kspec else None)
        mnode = ctx.mapping(kspec.get("metrics") or {}, None, where)
        kinds[kname] = (interval, {n: _metric(ctx, n, m, None, where) for n, m in mnode.items()})

    devices: list[Device] = []
    seen: set[str] = set()
    metrics_of_kind: dict[str, tuple[Metric, ...]] = {}
    for i, d in enumerate(doc.get("devices") or []):
        d = ctx.mapping(d, None, f"devices[{i}]")
        did = ctx.ident(d, "id", f"devices[{i}]")
        where = f"device '{did}'"
        if did in seen:
            raise ctx.fail(d, "id", where, "duplicate device id")
        seen.add(did)
        kind = ctx.ident(d, "kind", where, NAME_RE)
        kind_interval, kind_metrics = kinds.get(kind, (None, {}))
        site = ctx.ident(d, "site", where)
        if site_ids and site not in site_ids:
            raise ctx.fail(d, "site", where, f"field 'site': {site!r} is not a site in 'sites'")
        site_obj = site_by_id.get(site)
        metrics = dict(kind_metrics)
        mnode = ctx.mapping(d.get("metrics") or {}, None, where)
        for n, m in mnode.items():
            metrics[n] = _metric(ctx, n, m, kind_metrics.get(n), where)
        if not mnode:  # the kind's metrics as they are: one tuple for every such device
            metrics_of_kind.setdefault(kind, tuple(metrics.values()))
        if not metrics:
            raise ctx.fail(d, None, where,
                           f"no metrics: declare them on the device or on kind '{kind}'")
        interval = ctx.number(d, "interval_s", where, default=kind_interval or 60.0, lo=0.001)
        owner, contact, tags = parse_device_fields(ctx.fail, d, where)
        devices.append(Device(
            id=did, kind=kind, site=site,
            lat=ctx.number(d, "lat", where, lo=-90, hi=90,
                           default=site_obj.lat if site_obj else None),
            lon=ctx.number(d, "lon", where, lo=-180, hi=180,
                           default=site_obj.lon if site_obj else None),
            interval_s=interval, name=str(d.get("name", "")),
            metrics=metrics_of_kind[kind] if not mnode else tuple(metrics.values()),
            params=_params(ctx, d, where) or _NONE, owner=owner, contact=contact,
            tags=tags or _NONE,
        ))
    if not devices:
        raise RegistryError(f"{source}: the registry declares no devices")
    return Registry(sites=tuple(sites), devices=tuple(devices), source=source)


def default_registry_path() -> Path:
    """The Blitar registry shipped with Pantau."""
    return Path(__file__).with_name("data") / "blitar.yaml"
