"""Registry loading: the shipped Blitar file, and errors that name file, line, device, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.registry import RegistryError, default_registry_path, load_registry
from devices.series import SeriesTable

GOOD = """\
sites:
  - {id: kanigoro, lat: -8.13, lon: 112.21}
kinds:
  river_gauge:
    interval_s: 60
    metrics:
      level_cm: {unit: cm, min: 0, max: 1500}
devices:
  - id: wl-1
    kind: river_gauge
    site: kanigoro
    metrics:
      level_cm: {gain: 0.5}
"""


def test_shipped_registry_has_every_kind_and_valid_series() -> None:
    reg = load_registry(default_registry_path())
    kinds = {d.kind for d in reg.devices}
    assert kinds == {"river_gauge", "rain_gauge", "air_quality", "weather_station",
                     "traffic_counter", "street_light", "cold_chain"}
    table = SeriesTable.from_registry(reg)
    assert len(table) == sum(len(d.metrics) for d in reg.devices)
    for d in reg.devices:
        assert -8.4 < d.lat < -7.9 and 111.9 < d.lon < 112.5, d.id  # inside Blitar regency


def test_kind_defaults_and_device_overrides(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(GOOD)
    reg = load_registry(p)
    [d] = reg.devices
    assert (d.lat, d.lon, d.interval_s) == (-8.13, 112.21, 60.0)  # from site and kind
    [m] = d.metrics
    assert (m.unit, m.min, m.max, m.gain, m.offset) == ("cm", 0.0, 1500.0, 0.5, 0.0)


@pytest.mark.parametrize(("old", "new", "message"), [
    pytest.param("  - id: wl-1\n", "  - id: WL 1\n", r"r\.yaml:9: devices\[0\]: field 'id'",
                 id="bad-id"),
    pytest.param("    site: kanigoro\n", "    site: nowhere\n",
                 r"r\.yaml:11: device 'wl-1': field 'site': 'nowhere' is not a site",
                 id="unknown-site"),
    pytest.param("{gain: 0.5}", "{gain: 0}", r"device 'wl-1': metric 'level_cm': .*gain",
                 id="zero-gain"),
    pytest.param("min: 0, max: 1500", "min: 10, max: 5",
                 r"kind 'river_gauge': metric 'level_cm': min 10.0 is above max 5.0",
                 id="min-above-max"),
    pytest.param("lat: -8.13", "lat: -98.13", r"site 'kanigoro': field 'lat'", id="bad-lat"),
    pytest.param("    interval_s: 60\n", "    interval_s: soon\n",
                 r"r\.yaml:5: kind 'river_gauge': field 'interval_s': 'soon' is not a finite",
                 id="bad-interval"),
    pytest.param("devices:\n", "devices:\n  - {id: wl-1, kind: river_gauge, site: kanigoro}\n",
                 r"device 'wl-1': duplicate device id", id="duplicate"),
    pytest.param("  - {id: kanigoro", "  - {id: kanigoro, lat: [", r"r\.yaml: not valid YAML",
                 id="not-yaml"),
])
def test_errors_name_file_line_device_and_field(tmp_path: Path, old: str, new: str,
                                                message: str) -> None:
    assert old in GOOD
    p = tmp_path / "r.yaml"
    p.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(RegistryError, match=message):
        load_registry(p)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read the device registry"):
        load_registry(tmp_path / "absent.yaml")
