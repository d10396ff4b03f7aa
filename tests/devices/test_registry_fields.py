"""Registry fields for operators: owner, contact, tags, dated calibration (and their errors)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from devices.calibration import factors
from devices.registry import RegistryError, default_registry_path, load_registry

GOOD = """\
sites:
  - {id: kanigoro, lat: -8.13, lon: 112.21}
kinds:
  river_gauge:
    interval_s: 60
    metrics:
      level_cm: {unit: cm, min: 0, max: 1500}
      battery_v: {unit: V}
devices:
  - id: wl-1
    kind: river_gauge
    site: kanigoro
    river: brantas
    owner: BPBD Kabupaten Blitar
    contact: "+62 342 000000"
    tags: {district: kanigoro, install_year: 2024}
    metrics:
      level_cm:
        calibration:
          - {from: 2026-01-01, gain: 1.0, offset: -12}
          - {from: "2026-03-15T09:00:00+07:00", gain: 0.98, offset: -10, note: new sensor}
"""


def load(tmp_path: Path, text: str = GOOD):  # type: ignore[no-untyped-def]
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return load_registry(p)


def test_owner_contact_tags_and_calibration(tmp_path: Path) -> None:
    [d] = load(tmp_path).devices
    assert (d.owner, d.contact) == ("BPBD Kabupaten Blitar", "+62 342 000000")
    assert d.tags == {"district": "kanigoro", "install_year": "2024", "river": "brantas"}
    level, battery = d.metric("level_cm"), d.metric("battery_v")
    assert level is not None and battery is not None
    first, second = level.calibration
    assert first.start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert second.start == dt.datetime(2026, 3, 15, 2, tzinfo=dt.UTC) and second.note == \
        "new sensor"
    assert (level.gain, level.offset) == (0.98, -10.0)  # live ingest applies the newest period
    assert battery.calibration == () and (battery.gain, battery.offset) == (1.0, 0.0)
    ts = np.array([first.start_ns - 1, first.start_ns, second.start_ns - 1, second.start_ns])
    gain, offset = factors(level.calibration, ts)
    assert gain.tolist() == [1.0, 1.0, 1.0, 0.98] and offset.tolist() == [0.0, -12.0, -12.0,
                                                                         -10.0]


def test_fields_are_optional_and_the_shipped_registry_has_rivers_as_tags() -> None:
    reg = load_registry(default_registry_path())
    assert all(d.owner == "" or isinstance(d.owner, str) for d in reg.devices)
    gauges = [d for d in reg.devices if d.kind == "river_gauge"]
    assert gauges and all("river" in d.tags for d in gauges)


CAL = "      level_cm:\n        calibration:\n"


@pytest.mark.parametrize(("old", "new", "message"), [
    pytest.param("    owner: BPBD Kabupaten Blitar\n", "    owner: 42\n",
                 r"r\.yaml:14: device 'wl-1': field 'owner': 42 must be a string", id="owner"),
    pytest.param('    contact: "+62 342 000000"\n', "    contact: [a, b]\n",
                 r"r\.yaml:15: device 'wl-1': field 'contact': .* must be a string",
                 id="contact"),
    pytest.param("    tags: {district", "    tags: {Bad Name", r"device 'wl-1': tags: name 'Bad "
                 r"Name' must match", id="tag-name"),
    pytest.param("install_year: 2024}", "install_year: [2024]}",
                 r"r\.yaml:16: device 'wl-1': tags: field 'install_year'", id="tag-value"),
    pytest.param("tags: {district: kanigoro, install_year: 2024}", "tags: [a]",
                 r"device 'wl-1': field 'tags' must be a mapping", id="tags-not-mapping"),
    pytest.param("{from: 2026-01-01, gain", '{from: "2026-13-01", gain',
                 r"r\.yaml:20: device 'wl-1': metric 'level_cm': calibration\[0\]: "
                 r"field 'from': '2026-13-01' is not a date", id="bad-date"),
    pytest.param("{from: 2026-01-01, gain", "{from: 2026-13-01, gain",
                 r"r\.yaml: not valid YAML: month must be in 1\.\.12", id="impossible-date"),
    pytest.param('"2026-03-15T09:00:00+07:00"', '"2026-03-15T09:00:00"',
                 r"r\.yaml:21: .*calibration\[1\]: field 'from': .* with a zone", id="no-zone"),
    pytest.param('"2026-03-15T09:00:00+07:00"', "2025-12-01",
                 r"r\.yaml:21: .*calibration\[1\]: field 'from': periods must be in "
                 r"increasing date order", id="order"),
    pytest.param("gain: 0.98", "gain: 0", r"calibration\[1\]: field 'gain': must be non-zero",
                 id="zero-gain"),
    pytest.param("offset: -12", "offset: lots", r"r\.yaml:20: .*calibration\[0\]: field "
                 r"'offset': 'lots' is not a finite number", id="bad-offset"),
    pytest.param("{from: 2026-01-01, gain", "{gain", r"r\.yaml:20: .*calibration\[0\]: field "
                 r"'from' is missing", id="no-from"),
    pytest.param("offset: -12}", "offset: -12, until: 2026-02-01}",
                 r"calibration\[0\]: unknown field 'until'", id="unknown-field"),
    pytest.param("        calibration:\n", "        gain: 2\n        calibration:\n",
                 r"r\.yaml:20: device 'wl-1': metric 'level_cm': give either 'calibration'",
                 id="both"),
    pytest.param(CAL, CAL.replace("calibration:", "calibration: 3\n        x:"),
                 r"r\.yaml:19: device 'wl-1': metric 'level_cm': field 'calibration' must be "
                 r"a list", id="not-a-list"),
])
def test_errors_name_file_line_device_and_field(tmp_path: Path, old: str, new: str,
                                                message: str) -> None:
    assert old in GOOD
    with pytest.raises(RegistryError, match=message):
        load(tmp_path, GOOD.replace(old, new, 1))
