"""Settings: TOML + environment overrides, validation, secrets never printed, reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Secret, SettingsError
from pantau.config import load_settings, reference


def test_defaults_need_no_file_and_no_environment() -> None:
    s = load_settings(None, env={})
    assert (s.mqtt.host, s.mqtt.port, s.influx.api, s.http.port) == ("127.0.0.1", 1883, "v1",
                                                                     8080)


def test_file_then_environment(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('registry = "a.yaml"\n[influx]\napi = "v2"\nbucket = "from-file"\n'
                 'batch_size = 100\n[ingest]\nprocessors = ["calibration"]\n')
    s = load_settings(f, env={"PANTAU_INFLUX_BUCKET": "from-env", "PANTAU_INFLUX_TOKEN": "t0k",
                              "PANTAU_REGISTRY": "b.yaml", "PANTAU_HTTP_LISTEN": "0.0.0.0:9"})
    assert s.registry == "b.yaml"
    assert (s.influx.api, s.influx.bucket, s.influx.batch_size) == ("v2", "from-env", 100)
    assert s.influx.token.reveal() == "t0k"
    assert s.ingest.processors == ("calibration",)
    assert (s.http.host, s.http.port) == ("0.0.0.0", 9)


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc123\n")
    s = load_settings(None, env={"PANTAU_INFLUX_TOKEN_FILE": str(tmp_path / "token")})
    assert s.influx.token.reveal() == "abc123"
    with pytest.raises(SettingsError, match="PANTAU_INFLUX_TOKEN_FILE: cannot read"):
        load_settings(None, env={"PANTAU_INFLUX_TOKEN_FILE": str(tmp_path / "absent")})


def test_credentials_leave_the_url_and_never_print() -> None:
    s = load_settings(None, env={"PANTAU_MQTT_URL": "mqtt://pantau:s3cr%40t@broker:1884",
                                 "PANTAU_INFLUX_PASSWORD": "hunter2"})
    assert (s.mqtt.url, s.mqtt.username, s.mqtt.password.reveal()) == (
        "mqtt://broker:1884", "pantau", "s3cr@t")
    text = repr(s)
    assert "s3cr" not in text and "hunter2" not in text
    assert str(Secret("x")) == "Secret('***')"


@pytest.mark.parametrize(("env", "message"), [
    pytest.param({"PANTAU_INFLUX_API": "v9"}, "influx.api must be", id="api"),
    pytest.param({"PANTAU_MQTT_URL": "http://x"}, "expected mqtt://", id="url-scheme"),
    pytest.param({"PANTAU_MQTT_MAX_UNACKED": "70000"}, "within 1..65535", id="receive-max"),
    pytest.param({"PANTAU_INFLUX_BATCH_SIZE": "lots"}, "PANTAU_INFLUX_BATCH_SIZE: expected int",
                 id="not-int"),
    pytest.param({"PANTAU_HTTP_LISTEN": "8080"}, "expected host:port", id="listen"),
    pytest.param({"PANTAU_INGEST_RANGE_MODE": "drop"}, "range_mode", id="range-mode"),
])
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, env=env)


def test_unknown_keys_and_bad_toml_are_errors(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[influx]\nbukket = 'x'\n")
    with pytest.raises(SettingsError, match=r"unknown setting.*bukket"):
        load_settings(f, env={})
    f.write_text("[influx\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(f, env={})


def test_reference_documents_every_setting_and_the_docs_are_current() -> None:
    ref = reference()
    for name in ("PANTAU_MQTT_URL", "PANTAU_INFLUX_URL", "PANTAU_INFLUX_API",
                 "PANTAU_INFLUX_DATABASE", "PANTAU_INFLUX_ORG", "PANTAU_INFLUX_BUCKET",
                 "PANTAU_INFLUX_TOKEN", "PANTAU_REGISTRY", "PANTAU_HTTP_LISTEN"):
        assert f"`{name}`" in ref
    assert all(row.count("|") == 5 and not row.endswith("|  |") for row in ref.splitlines())
    docs = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert ref in docs.read_text(), "docs/settings.md is stale: run `pantau settings`"


def test_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "pantau.example.toml"
    s = load_settings(example, env={})
    assert s.mqtt.username == "pantau"
    assert s.ingest.processors == ("calibration", "range_check", "dedupe")


def test_readme_lists_every_rejection_reason() -> None:
    from core.reasons import Reason
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for r in Reason:
        if r.is_rejection:
            assert f"`{r.slug}`" in readme, f"README's rejection table lacks {r.slug}"


def test_compose_sets_only_real_settings_and_no_default_secrets() -> None:
    from ruamel.yaml import YAML
    root = Path(__file__).resolve().parents[2]
    compose = YAML(typ="safe").load((root / "docker-compose.yml").read_text())
    env = compose["services"]["pantau"]["environment"]
    ref = reference()
    for name, value in env.items():
        assert f"`{name.removesuffix('_FILE')}`" in ref, f"{name} is not a Pantau setting"
        secret = name.endswith(("PASSWORD", "TOKEN"))
        assert not secret or ("${" in str(value) and ":?" in str(value)), \
            f"{name}: a secret comes from the operator's .env (required) or a _FILE"
    loaded = load_settings(None, env={k: str(v) for k, v in env.items() if "$" not in str(v)
                                      and not k.endswith("_FILE")})
    assert loaded.influx.api == "v2" and loaded.influx.read_username == "pantau-read"
