"""Growing a registry to a large fleet for load tests: clones near the original devices.

Clone ``k`` of device ``d`` is ``<d.id>-c<NNNN>``: same kind, site, metrics and params, a few
hundred metres away (inside the regency's bounding box). Clones of river gauges stand on no
river (each is its own headwater). Pantau must load the same grown registry that the
simulator publishes for (`write_registry`), or it rejects the clones as unknown devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from devices.registry import Device, Registry
from devices.simulator.scenarios import SimulatorError

LAT, LON = (-8.38, -7.92), (111.92, 112.48)
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
    sites, kinds and devices, plus one flow mapping per clone copied from its original."""
    y = YAML(typ="rt")
    y.width = 4096
    doc = y.load(Path(registry.source).read_text(encoding="utf-8"))
    raw = {d["id"]: d for d in doc["devices"]}
    for d in registry.devices:
        if d.id in raw:
            continue
        template = raw.get(d.id.rsplit("-c", 1)[0])
        if template is None:
            raise SimulatorError(f"device {d.id!r} is neither in {registry.source} nor a clone")
        entry = CommentedMap((k, v) for k, v in template.items() if k != "river")
        entry.update(id=d.id, lat=d.lat, lon=d.lon)
        if d.params:
            entry["params"] = CommentedMap(d.params)
            entry["params"].fa.set_flow_style()
        elif "params" in entry:
            del entry["params"]
        entry.fa.set_flow_style()
        doc["devices"].append(entry)
    with Path(path).open("w", encoding="utf-8") as f:
        y.dump(doc, f)
