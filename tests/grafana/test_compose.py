"""docker-compose.yml against the Compose Specification (the JSON schema check-jsonschema
vendors; no engine, no network), and the promises it keeps: no default secrets, each service
only its own secrets, Pantau non-root with a read-only root filesystem, a stop grace longer
than its drain, only the operator's ports published; and deploy/grafana is what `pantau grafana
export` makes of the shipped registry."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML

from devices.registry import default_registry_path, load_registry
from grafana import export
from grafana.settings import GrafanaSettings
from ingest.settings import InfluxSettings
from pantau.app import DRAIN_TIMEOUT_S
from pantau.grafana_cli import sources
from pantau.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    jsonschema.validate(COMPOSE, schema)


def test_no_secret_has_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name in re.findall(r"\$\{(\w*(?:PASSWORD|TOKEN)\w*)", text):
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} must be required (:?)"


def _compose_variables() -> dict[str, tuple[bool, str]]:
    """Variable -> (required ``${VAR:?...}``, default of ``${VAR:-default}``), outside the
    file's comments (``$$`` is compose's escaped dollar)."""
    text = "\n".join(line for line in (ROOT / "docker-compose.yml").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    found: dict[str, tuple[bool, str]] = {}
    for name, op, arg in re.findall(r"(?<!\$)\$\{(\w+)(?::?([?-])([^}]*))?\}", text):
        required, default = found.get(name, (False, ""))
        found[name] = (required or op == "?", arg if op == "-" else default)
    return found


def test_env_example_lists_every_variable_compose_reads() -> None:
    lines = (ROOT / "deploy" / "env.example").read_text().splitlines()
    entry = re.compile(r"(# )?([A-Z][A-Z0-9_]*)=(.*)")
    entries = {m[2]: (i, m) for i, line in enumerate(lines) if (m := entry.fullmatch(line))}
    used = _compose_variables()
    assert {n for n, (req, _) in used.items() if req} >= {  # the parse finds them
        "INFLUX_ADMIN_TOKEN", "PANTAU_MQTT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    assert entries.keys() == used.keys(), "missing or stale in deploy/env.example"
    for name, (required, default) in used.items():
        i, m = entries[name]
        # required: an assignment to fill in; optional: commented out, showing compose's default
        assert (m[1] is None) == required and (required or m[3] == default), lines[i]
        assert lines[i - 1].startswith("# ") and not entry.fullmatch(lines[i - 1]), (
            f"{name} needs a comment line above it")
        if re.search("PASSWORD|TOKEN|SECRET", name):
            assert m[3] == "", f"{name}: no secret in the repository"


def test_each_service_mounts_only_its_own_secrets() -> None:
    def volumes(svc: str) -> set[str]:
        return {v.split(":")[0] for v in SERVICES[svc].get("volumes", [])}
    assert "pantau-secrets" in volumes("pantau") and "pantau-secrets" not in volumes("grafana")
    assert "grafana-secrets" in volumes("grafana") and "grafana-secrets" not in volumes("pantau")
    assert not any("credentials.json" in v for v in volumes("pantau") | volumes("grafana"))


def test_pantau_runs_locked_down_and_drains_before_it_is_killed() -> None:
    p = SERVICES["pantau"]
    assert p["read_only"] is True and p["user"].split(":")[0] != "0" and p["healthcheck"]
    grace = int(p["stop_grace_period"].rstrip("s"))
    assert grace > DRAIN_TIMEOUT_S
    assert SERVICES["simulator"]["profiles"] == ["demo"]


def test_only_the_operators_ports_are_published() -> None:
    published = {s: [p.split(":")[0] for p in svc.get("ports", [])]
                 for s, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"mosquitto": ["1883", "8883"], "pantau": ["8080"], "grafana": ["3000"]}
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_shipped_provisioning_is_the_export_of_the_shipped_registry() -> None:
    src = sources(Settings(), load_registry(default_registry_path()))
    wanted = export.files(src, InfluxSettings(api="v2"), GrafanaSettings(
        influx_url="http://influxdb:8086", alertmanager_url="http://alertmanager:9093"))
    for rel, text in wanted.items():
        path = ROOT / "deploy" / "grafana" / rel
        assert path.read_text() == text, (
            f"{path} is stale: PANTAU_INFLUX_API=v2 PANTAU_GRAFANA_INFLUX_URL=http://influxdb:8086 "
            "PANTAU_GRAFANA_ALERTMANAGER_URL=http://alertmanager:9093 pantau grafana export "
            "deploy/grafana")
