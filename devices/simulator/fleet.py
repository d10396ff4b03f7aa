"""Growing a registry to a large fleet for load tests: clones near the original devices.

Clone ``k`` of device ``d`` is ``<d.id>-c<NNNN>``: same kind, site, metrics and params, a few
hundred metres away (inside the regency's bounding box). Clones of river gauges stand on no
river (each is its own headwater). Pantau must load the same grown registry that the
simulator publishes for (`write_registry`), or it rejects the clones as unknown devices.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from devices.registry import Device, Registry
from devices.simulator.scenarios import SimulatorError

LAT, LON = (-8.38, -7.92), (111.92, 112.48)
_BARE = re.compile(r"[a-z][a-z0-9_]*")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")      # a string plain in YAML 1.1 and 1.2 ...
_SPECIAL = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan",
                      "inf"))                     # ... unless it is one of these
Rivers = Mapping[str, tuple[str, ...]]


def grow(registry: Registry, rivers: Rivers, n: int, *, seed: int = 0) -> tuple[Registry, Rivers]:
    """``registry`` with clones appended up to ``n`` devices (unchanged when already >= n)."""
    orig = registry.devices
    if n <= len(orig):
        return registry, rivers
    if n > 10_000 * len(orig):
        raise SimulatorError(f"--fleet {n}: at most 10,000 clones per registry device")
    rng = np.random.default_rng(seed)
    extra = n - len(orig)
    lat = np.clip(np.array([orig[k % len(orig)].lat for k in range(extra)])
                  + rng.normal(0, 0.004, extra), *LAT)
    lon = np.clip(np.array([orig[k % len(orig)].lon for k in range(extra)])
                  + rng.normal(0, 0.004, extra), *LON)
    clones: list[Device] = []
    for k in range(extra):
        d = orig[k % len(orig)]
        params = {p: v for p, v in d.params.items() if p != "river_km"}
        clones.append(dataclasses.replace(d, id=f"{d.id}-c{k // len(orig) + 1:04d}",
                                          lat=round(float(lat[k]), 5),
                                          lon=round(float(lon[k]), 5), params=params))
    return Registry(registry.sites, (*orig, *clones), source=registry.source), rivers


def write_registry(registry: Registry, path: str | Path) -> None:
    """Write ``registry`` (grown from the file it was loaded from) as YAML: the source file's
    sites, kinds and devices, then one flow mapping line per clone copied from its original.

    The clones are rendered as text, not by ruamel's emitter (~10 ms per device at 100,000),
    and the lean loader (`devices.registry_yaml.lean_document`) reads them back quickly.
    """
    y = YAML(typ="rt")
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)   # devices' items as "  - ": the clones follow
    doc = y.load(Path(registry.source).read_text(encoding="utf-8"))
    raw = {d["id"]: d for d in doc["devices"]}
    lines: list[str] = []
    for d in registry.devices:
        if d.id in raw:
            continue
        template = raw.get(d.id.rsplit("-c", 1)[0])
        if template is None:
            raise SimulatorError(f"device {d.id!r} is neither in {registry.source} nor a clone")
        entry: dict[str, Any] = {k: v for k, v in template.items() if k not in ("river", "params")}
        entry.update(id=d.id, lat=d.lat, lon=d.lon)
        if d.params:
            entry["params"] = dict(d.params)
        lines.append(f"  - {_flow(entry)}\n")
    devices = doc.pop("devices")
    doc["devices"] = devices                    # last, so that the clones' lines extend it
    buf = io.StringIO()
    y.dump(doc, buf)
    text = buf.getvalue()
    Path(path).write_text(text + ("" if text.endswith("\n") else "\n") + "".join(lines),
                          encoding="utf-8")


def _flow(v: Any) -> str:
    """``v`` as a one-line YAML flow value (strings double-quoted as JSON, which is YAML)."""
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_key(k)}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return json.dumps(float(v))          # not ruamel's ScalarFloat, whose repr differs
    if isinstance(v, str) and _WORD.fullmatch(v) and v.lower() not in _SPECIAL:
        return v
    return json.dumps(v, ensure_ascii=False)


def _key(k: Any) -> str:
    return k if isinstance(k, str) and _BARE.fullmatch(k) and k not in _SPECIAL else json.dumps(k)
