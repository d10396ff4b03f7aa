"""The dashboards offline: valid for Grafana, naming only what Pantau writes, and exported
stably (a device added to the registry changes only what shows that device)."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from devices.registry import default_registry_path, load_registry
from grafana import export, validate
from grafana.dashboards import build_all
from grafana.settings import GrafanaSettings
from ingest import schema
from ingest.settings import InfluxSettings
from pantau.grafana_cli import sources
from pantau.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SRC = sources(Settings(), load_registry(default_registry_path()))
BOARDS = build_all(SRC)
UIDS = {d["uid"] for d in export.datasources(InfluxSettings(), GrafanaSettings())}
# Labels of Pantau's own counters (tags of the `pantau` measurement); the query tests against
# the real InfluxDB show each is written.
LABELS = {"instance", "reason", "kind", "resolution", "pollutant", "average", "status",
          "listener", "result", "severity"}
NEW = """  - {id: wl-brantas-baru, kind: river_gauge, site: wlingi, lat: -8.12, lon: 112.3,
     name: "Brantas at Wlingi bridge", river: brantas,
     params: {river_km: 12, base_level_cm: 170, waspada_cm: 400, siaga_cm: 540, awas_cm: 680,
              hysteresis_cm: 20, reference_height_cm: 1000}}
"""


def queries(board: dict[str, Any]) -> list[str]:
    out = [t["query"] for p in board["panels"] for t in p.get("targets", [])]
    return out + [a["target"]["query"] for a in board["annotations"]["list"]]


@pytest.mark.parametrize("uid", list(BOARDS))
def test_dashboard_is_valid(uid: str) -> None:
    assert validate.problems(BOARDS[uid], UIDS) == []


def test_validator_finds_what_grafana_would_refuse() -> None:
    board = json.loads(json.dumps(BOARDS["pantau-rivers"]))
    board["panels"][1]["id"] = board["panels"][0]["id"]
    board["panels"][2]["gridPos"] = dict(board["panels"][1]["gridPos"])
    board["panels"][3]["targets"][0]["query"] += " AND $station"
    board["panels"][3]["datasource"] = {"type": "influxdb", "uid": "elsewhere"}
    found = "\n".join(validate.problems(board, UIDS))
    assert "unique" in found and "overlap" in found and "$station" in found
    assert "'elsewhere' is not provisioned" in found


@pytest.mark.parametrize("uid", list(BOARDS))
def test_queries_name_only_what_pantau_writes(uid: str) -> None:
    fields = {m: set(f) for m, f in SRC.fields.items()}
    tiers = {m: set(f) for m, f in SRC.tier_fields.items()}
    written = {**{m: fields[m] | tiers.get(m, set()) for m in fields},
               schema.ALERTS_MEASUREMENT: set(schema.ALERTS_FIELDS),
               schema.PANTAU_MEASUREMENT: set(SRC.pantau_fields)}
    tags = set(schema.TAGS) | set(schema.ALERTS_TAGS) | LABELS
    for q in queries(BOARDS[uid]):
        aliases = set(re.findall(r'AS "([^"]+)"', q))
        sources = re.findall(r'FROM (?:"([^"]+)"\.)?"([^"]+)"', q)
        assert sources or "FROM /" in q, q
        allowed = tags | aliases | {SRC.tier_rp} | {m for _, m in sources}
        for rp, m in sources:
            assert m in written, f"{q}: Pantau writes no measurement {m!r}"
            assert rp in ("", SRC.tier_rp), f"{q}: unknown retention policy {rp!r}"
            allowed |= written[m]
        if "FROM /" in q:  # the drill-down: any device kind
            allowed |= {f for m in fields for f in written[m]} | set(SRC.pantau_fields)
        named = set(re.findall(r'"([^"]+)"', q))
        assert named <= allowed, f"{q}: names {sorted(named - allowed)}, not written"


def test_sdk_variant_matches_the_grafana_compose_runs() -> None:
    sdk = version("grafana-foundation-sdk").split("!")[-1]
    image = re.search(r"image: grafana/grafana-oss:(\S+)",
                      (ROOT / "docker-compose.yml").read_text())
    assert image is not None
    assert image[1].split(".")[:2] == sdk.split(".")[:2], (image[1], sdk)


def test_a_device_added_changes_only_what_shows_it(tmp_path: Path) -> None:
    text = default_registry_path().read_text()
    grown = tmp_path / "registry.yaml"
    grown.write_text(text.rstrip("\n") + "\n" + NEW)  # appended, as `pantau devices add` does
    influx, grafana = InfluxSettings(), GrafanaSettings()
    before = export.files(SRC, influx, grafana)
    after = export.files(sources(Settings(), load_registry(grown)), influx, grafana)
    assert before.keys() == after.keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"gazetteer/pantau-devices.json", "dashboards/pantau-rivers.json",
                       "dashboards/pantau-command-center.json"}
    old_lines, new_lines = (before["gazetteer/pantau-devices.json"].splitlines(),
                            after["gazetteer/pantau-devices.json"].splitlines())
    added = [line for line in new_lines if line not in old_lines]
    assert len(new_lines) == len(old_lines) + 1 and len(added) == 2  # the comma moves
    assert "wl-brantas-baru" in added[-1]
    for name in changed - {"gazetteer/pantau-devices.json"}:
        a, b = json.loads(before[name]), json.loads(after[name])
        assert {k: v for k, v in a.items() if k != "panels"} == \
               {k: v for k, v in b.items() if k != "panels"}
        old = {p["id"]: p for p in a["panels"]}
        for p in b["panels"]:
            if old.get(p["id"]) != p:
                assert "wl-brantas-baru" in json.dumps(p), (name, p["title"])


def test_export_writes_the_provisioning_tree(tmp_path: Path) -> None:
    paths = export.export(tmp_path, SRC, InfluxSettings(api="v2"), GrafanaSettings())
    rel = {str(p.relative_to(tmp_path)) for p in paths}
    assert {f"dashboards/{uid}.json" for uid in BOARDS} <= rel
    ds = (tmp_path / "provisioning/datasources/pantau.yaml").read_text()
    assert "httpHeaderValue1: Token $__file{/run/secrets/grafana-influx-read}" in ds
    assert "version: InfluxQL" in ds
    (tmp_path / "dashboards/pantau-gone.json").write_text("{}")
    export.export(tmp_path, SRC, InfluxSettings(api="v2"), GrafanaSettings())
    assert not (tmp_path / "dashboards/pantau-gone.json").exists()
