"""``pantau grafana export DIR``: everything Grafana needs to show the command center, as its
provisioning files (docker-compose mounts them; see docker-compose.yml)::

    DIR/provisioning/datasources/pantau.yaml   InfluxDB (InfluxQL) + Alertmanager
    DIR/provisioning/dashboards/pantau.yaml    a file provider: folder "Pantau", DIR/dashboards
    DIR/dashboards/<uid>.json                  one file per dashboard
    DIR/gazetteer/pantau-devices.json          every device's coordinates (the map's lookup)

Output is stable and diff-friendly: sorted keys, two-space indent, one device per gazetteer
line, no timestamps or versions; a device added to the registry changes only what shows it.
No secret is exported: the data source reads its password or token from a file inside
Grafana's container (``$__file{...}``, `GrafanaSettings.influx_read_secret_file`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from grafana.board import FOLDER_TITLE, FOLDER_UID
from grafana.dashboards import build_all
from grafana.panels import ALERTMANAGER_UID, INFLUX_UID
from grafana.settings import GrafanaSettings
from grafana.sources import Sources
from ingest.settings import InfluxSettings

DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards/pantau"
GAZETTEER = "pantau-devices.json"


def datasources(influx: InfluxSettings, grafana: GrafanaSettings, *,
                secret: str | None = None) -> list[dict[str, Any]]:
    """Grafana's data sources for Pantau. ``secret``: the InfluxDB read password or token
    itself (sync), else a ``$__file{...}`` reference (export)."""
    secret = secret if secret is not None else f"$__file{{{grafana.influx_read_secret_file}}}"
    json_data: dict[str, Any] = {"version": "InfluxQL", "dbName": influx.database,
                                 "httpMode": "POST", "timeInterval": "10s"}
    influx_ds: dict[str, Any] = {
        "name": "Pantau InfluxDB", "uid": INFLUX_UID, "type": "influxdb", "access": "proxy",
        "url": grafana.influx_url or influx.url, "isDefault": True, "editable": False,
        "jsonData": json_data}
    if influx.api == "v2":
        # InfluxQL on 2.x: the v1 compatibility API through the DBRP mapping, a read token.
        json_data["httpHeaderName1"] = "Authorization"
        influx_ds["secureJsonData"] = {"httpHeaderValue1": f"Token {secret}"}
    else:
        influx_ds["user"] = grafana.influx_read_user or influx.read_username
        influx_ds["secureJsonData"] = {"password": secret}
    return [influx_ds, {
        "name": "Pantau Alertmanager", "uid": ALERTMANAGER_UID, "type": "alertmanager",
        "access": "proxy", "url": grafana.alertmanager_url, "editable": False,
        "jsonData": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False}}]


def gazetteer(src: Sources) -> str:
    """The devices as a Grafana gazetteer (key = device id), one device per line."""
    rows = [json.dumps({"key": d.id, "name": d.name or d.id, "latitude": d.lat,
                        "longitude": d.lon, "kind": d.kind, "site": d.site}, sort_keys=True)
            for d in src.registry.devices]
    return "[\n" + ",\n".join(f"  {r}" for r in rows) + "\n]\n"


def dashboard_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml(doc: dict[str, Any]) -> str:
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def files(src: Sources, influx: InfluxSettings, grafana: GrafanaSettings) -> dict[str, str]:
    """Relative path -> content of every provisioning file."""
    out = {f"dashboards/{uid}.json": dashboard_json(doc)
           for uid, doc in build_all(src).items()}
    out["gazetteer/" + GAZETTEER] = gazetteer(src)
    out["provisioning/datasources/pantau.yaml"] = _yaml(
        {"apiVersion": 1, "datasources": datasources(influx, grafana)})
    out["provisioning/dashboards/pantau.yaml"] = _yaml({"apiVersion": 1, "providers": [{
        "name": "pantau", "orgId": 1, "type": "file", "folder": FOLDER_TITLE,
        "folderUid": FOLDER_UID, "disableDeletion": True, "allowUiUpdates": False,
        "updateIntervalSeconds": 60, "options": {"path": DASHBOARDS_IN_CONTAINER}}]})
    return dict(sorted(out.items()))


def export(directory: str | Path, src: Sources, influx: InfluxSettings,
           grafana: GrafanaSettings) -> list[Path]:
    """Write `files` under ``directory``; dashboards no longer generated are removed (their
    folder holds only generated files). Returns the paths written."""
    root = Path(directory)
    wanted = files(src, influx, grafana)
    stale = root / "dashboards"
    if stale.is_dir():
        for old in stale.glob("*.json"):
            if f"dashboards/{old.name}" not in wanted:
                old.unlink()
    written = []
    for rel, text in wanted.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
