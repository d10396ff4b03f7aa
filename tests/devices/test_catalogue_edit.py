"""`pantau devices add | remove | list | show`: edits keep every other byte of the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devices.catalogue import NewDevice, add_device, remove_device
from devices.registry import RegistryError, default_registry_path, load_registry
from pantau.cli import main

BLOCK = """\
# A hand-written registry in block style.
sites:
  - {id: kanigoro, lat: -8.13, lon: 112.21}   # the seat of government
kinds:
  river_gauge:
    metrics:
      level_cm: {unit: cm}
  rain_gauge:
    metrics: {rain_mm: {unit: mm}}
devices:
  # gauges
  - id: wl-1
    kind: river_gauge
    site: kanigoro  # on the bridge
  # rain
  - id: rg-1
    kind: rain_gauge
    site: kanigoro

# trailing comment
"""


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    return Path(shutil.copy(default_registry_path(), tmp_path / "blitar.yaml"))


@pytest.fixture
def block(tmp_path: Path) -> Path:
    p = tmp_path / "block.yaml"
    p.write_text(BLOCK)
    return p


@pytest.mark.parametrize(("fixture", "new"), [
    pytest.param("shipped", NewDevice("wl-brantas-x", "river_gauge", "kanigoro", -8.15, 112.2,
                                      "Brantas X", None, "brantas", {"river_km": 30}),
                 id="gauge-in-the-middle"),
    pytest.param("shipped", NewDevice("sl-bakung-002", "street_light", "bakung"),
                 id="light-at-the-end"),
    pytest.param("block", NewDevice("wl-2", "river_gauge", "kanigoro", interval_s=30),
                 id="block-style-middle"),
    pytest.param("block", NewDevice("rg-2", "rain_gauge", "kanigoro"), id="block-style-end"),
])
def test_add_then_remove_restores_the_file(request: pytest.FixtureRequest, fixture: str,
                                           new: NewDevice) -> None:
    path: Path = request.getfixturevalue(fixture)
    before = path.read_text()
    added = add_device(path, new)
    after = path.read_text()
    assert added.id == new.id
    assert load_registry(path).device(new.id) == added
    # Only one line was added; every comment is still there, in order.
    assert [x for x in after.splitlines() if new.id not in x] == before.splitlines()
    devices = load_registry(path).devices
    at = [d.id for d in devices].index(new.id)
    assert devices[at - 1].kind == new.kind  # grouped after the last one of its kind
    assert all(d.kind != new.kind for d in devices[at + 1:])
    remove_device(path, new.id)
    assert path.read_text() == before


def test_remove_keeps_neighbouring_comments(block: Path) -> None:
    remove_device(block, "wl-1")
    assert block.read_text() == BLOCK.replace(
        "  - id: wl-1\n    kind: river_gauge\n    site: kanigoro  # on the bridge\n", "")


@pytest.mark.parametrize(("new", "message"), [
    pytest.param(NewDevice("wl-1", "river_gauge", "kanigoro"), r"device 'wl-1': already exists",
                 id="duplicate"),
    pytest.param(NewDevice("x-1", "kiosk", "kanigoro"),
                 r"field 'kind': 'kiosk' is not one of river_gauge, rain_gauge", id="kind"),
    pytest.param(NewDevice("x-1", "rain_gauge", "mars"),
                 r"field 'site': 'mars' is not one of kanigoro", id="site"),
    pytest.param(NewDevice("X 1", "rain_gauge", "kanigoro"),
                 r"block\.yaml:19: devices\[2\]: field 'id'", id="bad-id"),
    pytest.param(NewDevice("x-1", "rain_gauge", "kanigoro", lat=-98.0),
                 r"block\.yaml:\d+: device 'x-1': field 'lat'", id="bad-lat"),
    pytest.param(NewDevice("x-1", "rain_gauge", "kanigoro", interval_s=-1),
                 r"device 'x-1': field 'interval_s'", id="bad-interval"),
    pytest.param(NewDevice("x-1", "rain_gauge", "kanigoro", params={"Bad Name": 1}),
                 r"device 'x-1': params: name 'Bad Name'", id="bad-param"),
])
def test_add_rejects_invalid_devices_and_leaves_the_file(block: Path, new: NewDevice,
                                                         message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        add_device(block, new)
    assert block.read_text() == BLOCK


@pytest.mark.parametrize(("device_id", "message"), [
    pytest.param("nope", r"device 'nope' is not in the registry", id="unknown"),
])
def test_remove_rejects(block: Path, device_id: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        remove_device(block, device_id)
    assert block.read_text() == BLOCK


def test_removing_the_last_device_is_refused(block: Path) -> None:
    remove_device(block, "wl-1")
    with pytest.raises(RegistryError, match="declares no devices"):
        remove_device(block, "rg-1")


def test_cli_add_list_show_remove(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = shipped.read_text()
    reg = ["devices", "--registry", str(shipped)]
    assert main([*reg, "add", "rg-x", "--kind", "rain_gauge", "--site", "bakung",
                 "--param", "catchment_km2=12.5"]) == 0
    assert main([*reg, "list", "--kind", "rain_gauge", "--site", "bakung"]) == 0
    assert main([*reg, "show", "rg-x"]) == 0
    out = capsys.readouterr().out
    assert "rg-bakung " in out
    shown = json.loads(out[out.index("{"):])
    assert shown["params"] == {"catchment_km2": 12.5}
    assert shown["topics"]["telemetry"] == "pantau/bakung/rg-x/telemetry"
    assert main([*reg, "remove", "rg-x"]) == 0
    assert shipped.read_text() == before
    assert main([*reg, "remove", "rg-x"]) == 2
    assert "is not in the registry" in capsys.readouterr().err


def test_cli_provision(shipped: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--registry", str(shipped), "provision", "--out",
                 str(tmp_path / "mqtt")]) == 0
    assert "55 new users" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "mqtt").iterdir()} == {"credentials.json", "passwd",
                                                                "acl"}
