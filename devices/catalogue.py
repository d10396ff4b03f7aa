"""What the simulator and the tools need beyond `devices.registry`: the rivers.

A river gauge in the registry YAML may carry ``river: <name>`` (ignored by `load_registry`,
which keeps only numeric ``params``) and ``params.river_km`` (distance along that river,
growing downstream). `load_rivers` reads them back: river name -> gauge ids ordered from
upstream to downstream, so the simulator can route a flood wave down the river with a lag.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from devices.registry import Registry, RegistryError

#: Params every river gauge of the shipped catalogue has (see ``devices/data/blitar.yaml``).
GAUGE_PARAMS = ("reference_height_cm", "waspada_cm", "siaga_cm", "awas_cm", "hysteresis_cm")


def rivers_from_doc(doc: Any, registry: Registry) -> dict[str, tuple[str, ...]]:
    """River name -> gauge ids, upstream first (by ``params.river_km``, then file order).

    Devices of ``doc`` without a ``river`` string are not on a river. Raise `RegistryError`
    when a ``river`` is not a name or names a device that the registry does not hold.
    """
    found: dict[str, list[tuple[float, int, str]]] = {}
    for i, d in enumerate(doc.get("devices") or [] if isinstance(doc, Mapping) else []):
        if not isinstance(d, Mapping) or "river" not in d:
            continue
        did, river = d.get("id"), d["river"]
        dev = registry.device(str(did))
        if dev is None or not isinstance(river, str) or not river:
            raise RegistryError(f"{registry.source}: devices[{i}]: field 'river': {river!r} "
                                f"must be a river name on a known device")
        found.setdefault(river, []).append((dev.params.get("river_km", 0.0), i, dev.id))
    return {r: tuple(did for _, _, did in sorted(g)) for r, g in found.items()}


def load_rivers(path: str | Path, registry: Registry) -> dict[str, tuple[str, ...]]:
    """`rivers_from_doc` for a registry file (the one ``registry`` was loaded from)."""
    try:
        doc = YAML(typ="safe").load(Path(path).read_text(encoding="utf-8"))
    except (OSError, YAMLError) as e:
        raise RegistryError(f"{path}: cannot read the rivers of the registry: {e}") from e
    return rivers_from_doc(doc, registry)
