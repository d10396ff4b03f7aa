"""The lean registry loader reads what the round-trip loader reads and hands it the rest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from devices.catalogue import load_rivers
from devices.registry import default_registry_path, load_registry, parse_registry
from devices.registry_yaml import NotLean, lean_document
from devices.simulator.fleet import grow, write_registry

SCALARS = """\
plain: [kanigoro, Kanigoro, ws-1, e5, 0, -7, 12, 012, 1_000, 0x1f, 0o17, +3, -8.13, 1.50,
        1e3, .5, .inf, -.Inf, .nan, true, True, FALSE, "true", on, off, yes, No, y, n, null,
        Null, ~, "", '', 2026-01-01, "2026-01-01", "12", '1.5', a b c, "%"]
zoned: 2026-03-15T09:00:00+07:00
spaced: 2026-03-15 09:00
sexagesimal: 1:20:30
block: |
  two
  lines
empty:
nested: {a: [1, {b: null}], c: {}, d: []}
"""


def plain(v: Any) -> Any:
    """ruamel's round-trip types as the plain ones they stand for."""
    if isinstance(v, dict):
        return {plain(k): plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, dt.date):
        return v
    for t in (int, float, str):
        if isinstance(v, t):
            return t(v)
    raise TypeError(type(v))


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (NaN equals NaN; bool is not int)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if type(a) is not type(b) and not (isinstance(a, dt.datetime) and isinstance(b, dt.datetime)):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("text", [
    pytest.param(SCALARS, id="scalars"),
    pytest.param(default_registry_path().read_text(encoding="utf-8"), id="blitar"),
    pytest.param("", id="empty"),
    pytest.param("- 1\n- [2, 3]\n", id="sequence"),
])
def test_lean_document_equals_the_round_trip_one(text: str) -> None:
    assert same(lean_document(text), plain(YAML(typ="rt").load(text)))


@pytest.mark.parametrize("text", [
    pytest.param("a: &x {b: 1}\nc: *x\n", id="anchor-alias"),
    pytest.param("a: {b: 1}\nc: {<<: {b: 2}, d: 3}\n", id="merge"),
    pytest.param("a: !!str 1\n", id="tag"),
    pytest.param("a: 1\na: 2\n", id="duplicate-key"),
    pytest.param("? [a]\n: 1\n", id="complex-key"),
    pytest.param("a: 1\n---\nb: 2\n", id="two-documents"),
])
def test_what_the_lean_loader_leaves_to_the_round_trip_one(text: str) -> None:
    with pytest.raises(NotLean):
        lean_document(text)


def test_what_the_c_parser_refuses_goes_to_the_round_trip_loader(tmp_path: Path) -> None:
    """libyaml (YAML 1.1) refuses a ':' in a plain scalar inside a flow mapping; YAML 1.2
    and ruamel's own parser take it."""
    p = tmp_path / "r.yaml"
    p.write_text("sites: [{id: s, lat: -8.1, lon: 112.2}]\n"
                 "kinds: {k: {metrics: {x: {unit: cm, calibration: [\n"
                 "  {from: 2026-03-15T09:00:00+07:00, gain: 2}]}}}}\n"
                 "devices: [{id: d-1, kind: k, site: s}]\n")
    [d] = load_registry(p).devices
    assert d.metrics[0].gain == 2.0


def test_a_registry_with_anchors_loads_through_the_round_trip_loader(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("sites: [{id: s, lat: -8.1, lon: 112.2}]\n"
                 "kinds: {k: {metrics: {x: &m {unit: cm, max: 5}, y: *m}}}\n"
                 "devices: [{id: d-1, kind: k, site: s}]\n")
    [d] = load_registry(p).devices
    assert [(m.name, m.max) for m in d.metrics] == [("x", 5.0), ("y", 5.0)]


def test_shipped_registry_loads_as_the_round_trip_loader_reads_it() -> None:
    path = default_registry_path()
    rt = parse_registry(YAML(typ="rt").load(path.read_text(encoding="utf-8")), source=str(path))
    assert load_registry(path) == rt


def test_a_grown_fleet_written_and_read_back(tmp_path: Path) -> None:
    """Clones are written as text lines that both loaders read as the grown registry."""
    path = default_registry_path()
    reg = load_registry(path)
    grown, _ = grow(reg, load_rivers(path, reg), 500, seed=3)
    out = tmp_path / "fleet.yaml"
    write_registry(grown, out)
    back = load_registry(out)
    rt = parse_registry(YAML(typ="rt").load(out.read_text(encoding="utf-8")), source=str(out))
    assert back == rt
    assert len(back.devices) == 500
    for a, b in zip(back.devices, grown.devices, strict=True):
        # a clone's river stays with its original (clones stand on no river)
        assert (a.id, a.kind, a.site, a.lat, a.lon, a.metrics, dict(a.params)) == \
               (b.id, b.kind, b.site, b.lat, b.lon, b.metrics, dict(b.params))
