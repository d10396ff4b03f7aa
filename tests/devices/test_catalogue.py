"""The shipped Blitar catalogue: size, kinds, plausible gauge params and river order."""

from __future__ import annotations

from collections import Counter

from devices.catalogue import GAUGE_PARAMS, load_rivers
from devices.registry import default_registry_path, load_registry


def test_catalogue_has_forty_devices_of_every_kind() -> None:
    reg = load_registry(default_registry_path())
    kinds = Counter(d.kind for d in reg.devices)
    assert len(reg.devices) >= 40
    assert min(kinds.values()) >= 5, kinds
    assert {d.site for d in reg.devices} == {s.id for s in reg.sites}  # every district used


def test_river_gauges_have_ordered_flood_stages() -> None:
    reg = load_registry(default_registry_path())
    for d in (d for d in reg.devices if d.kind == "river_gauge"):
        p = d.params
        assert set(GAUGE_PARAMS) <= set(p), d.id
        assert p["base_level_cm"] < p["waspada_cm"] < p["siaga_cm"] < p["awas_cm"], d.id
        assert p["awas_cm"] < p["reference_height_cm"], d.id
        assert 0 < p["hysteresis_cm"] < p["siaga_cm"] - p["waspada_cm"], d.id


def test_rivers_run_upstream_to_downstream() -> None:
    path = default_registry_path()
    reg = load_registry(path)
    rivers = load_rivers(path, reg)
    assert rivers["brantas"] == ("wl-brantas-kesamben", "wl-brantas-wlingi",
                                 "wl-brantas-sutojayan", "wl-brantas-kanigoro",
                                 "wl-brantas-srengat")
    assert set(rivers) == {"brantas", "putih", "bladak"}
    on_rivers = {g for gauges in rivers.values() for g in gauges}
    assert on_rivers == {d.id for d in reg.devices if d.kind == "river_gauge"}
