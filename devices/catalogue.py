"""What the simulator and the tools need beyond `devices.registry`: the rivers.

A river gauge in the registry YAML may carry ``river: <name>`` (ignored by `load_registry`,
which keeps only numeric ``params``) and ``params.river_km`` (distance along that river,
growing downstream). `load_rivers` reads them back: river name -> gauge ids ordered from
upstream to downstream, so the simulator can route a flood wave down the river with a lag.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from devices.registry import Device, Registry, RegistryError, parse_registry

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


# -- editing the registry file: `pantau devices add | remove` --------------------------------
# A full ruamel round-trip re-flows the hand-wrapped flow mappings of the whole file, so edits
# are spliced into the text instead: ruamel gives each device's line span, the new device is
# rendered by ruamel as one flow mapping, and the result is re-validated before it replaces the
# file. Every other byte (comments, blank lines, layout) stays as it was.


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to add; ``lat``/``lon``/``interval_s`` default to its site's and kind's."""

    id: str
    kind: str
    site: str
    lat: float | None = None
    lon: float | None = None
    name: str = ""
    interval_s: float | None = None
    river: str | None = None
    params: Mapping[str, float] = field(default_factory=dict)

    def as_yaml(self) -> CommentedMap:
        m = CommentedMap(id=self.id, kind=self.kind, site=self.site)
        for key in ("lat", "lon", "name", "interval_s", "river"):
            if getattr(self, key):
                m[key] = getattr(self, key)
        if self.params:
            m["params"] = CommentedMap(self.params)
            m["params"].fa.set_flow_style()
        m.fa.set_flow_style()
        return m


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.width = 4096  # one line per added device
    return y


def _parse(text: str, path: Path) -> tuple[Any, Registry]:
    try:
        doc = _yaml().load(text)
    except YAMLError as e:
        raise RegistryError(f"{path}: not valid YAML: {e}") from e
    registry = parse_registry(doc, source=str(path))
    rivers_from_doc(doc, registry)
    return doc, registry


def _read(path: Path) -> tuple[str, Any, Registry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RegistryError(f"{path}: cannot read the device registry: {e.strerror}") from e
    doc, registry = _parse(text, path)
    if doc["devices"].fa.flow_style():
        raise RegistryError(f"{path}: 'devices' is a flow sequence; edit it by hand")
    return text, doc, registry


def _span(doc: Any, lines: list[str], i: int) -> tuple[int, int]:
    """0-based [start, end) lines of device ``i``, without trailing blank or comment lines."""
    devices = doc["devices"]
    start = devices.lc.item(i)[0]
    if i + 1 < len(devices):
        end = devices.lc.item(i + 1)[0]
    else:
        after = [doc.lc.key(k)[0] for k in doc if doc.lc.key(k)[0] > start]
        end = min(after, default=len(lines))
    while end > start + 1 and lines[end - 1].strip()[:1] in ("", "#"):
        end -= 1
    return start, end


def _write(path: Path, text: str) -> None:
    from devices.provision import write_atomic

    write_atomic(path, text, mode=path.stat().st_mode & 0o777)


def add_device(path: str | Path, new: NewDevice) -> Device:
    """Append ``new`` after the last device of its kind (or at the end), keeping the rest of
    the file as it is; raise `RegistryError` (file untouched) when the result is invalid."""
    path = Path(path)
    text, doc, registry = _read(path)
    where = f"{path}: device {new.id!r}"
    if registry.device(new.id) is not None:
        raise RegistryError(f"{where}: already exists")
    if new.kind not in (doc.get("kinds") or {}):
        raise RegistryError(f"{where}: field 'kind': {new.kind!r} is not one of "
                            f"{', '.join(doc.get('kinds') or {})}")
    if new.site not in {s.id for s in registry.sites}:
        raise RegistryError(f"{where}: field 'site': {new.site!r} is not one of "
                            f"{', '.join(s.id for s in registry.sites)}")
    lines = text.splitlines(keepends=True)
    devices = doc["devices"]
    same = [i for i, d in enumerate(devices) if d.get("kind") == new.kind]
    at = _span(doc, lines, same[-1] if same else len(devices) - 1)[1]
    dash = " " * max(devices.lc.item(0)[1] - 2, 0)
    buf = io.StringIO()
    _yaml().dump([new.as_yaml()], buf)
    if lines and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, dash + buf.getvalue())
    new_text = "".join(lines)
    _, reg = _parse(new_text, path)
    _write(path, new_text)
    added = reg.device(new.id)
    assert added is not None
    return added


def remove_device(path: str | Path, device_id: str) -> None:
    """Delete one device's lines (its comments above stay); `RegistryError` when it is not in
    the file or removing it leaves the registry invalid (e.g. empty)."""
    path = Path(path)
    text, doc, _ = _read(path)
    index = next((i for i, d in enumerate(doc["devices"]) if d.get("id") == device_id), None)
    if index is None:
        raise RegistryError(f"{path}: device {device_id!r} is not in the registry")
    lines = text.splitlines(keepends=True)
    start, end = _span(doc, lines, index)
    new_text = "".join(lines[:start] + lines[end:])
    _parse(new_text, path)
    _write(path, new_text)
