"""Credentials in ``mqtt.url`` and ``influx.url`` leave the URL when the settings are built, an
IPv6 host keeps its brackets, and no error about a URL shows a password; ``mqtts://`` turns on
TLS, and TLS files without it are an error."""

from __future__ import annotations

import pytest

from core.settings import SettingsError
from ingest.settings import (
    InfluxSettings,
    MqttSettings,
    parse_mqtt_url,
    redact_url,
    split_userinfo,
)
from pantau.config import load_settings

PASSWORD = "hunter2"


@pytest.mark.parametrize(("url", "clean", "host", "port"), [
    pytest.param("mqtt://pantau:hunter2@broker:1884", "mqtt://broker:1884", "broker", 1884,
                 id="name"),
    pytest.param("mqtt://pantau:hunter2@[::1]:1884", "mqtt://[::1]:1884", "::1", 1884,
                 id="ipv6"),
    pytest.param("mqtt://pantau:hunter2@[fd00::5]", "mqtt://[fd00::5]", "fd00::5", 1883,
                 id="ipv6-default-port"),
    pytest.param("tcp://pantau:hunter2@10.0.0.7", "tcp://10.0.0.7", "10.0.0.7", 1883,
                 id="tcp-default-port"),
])
def test_mqtt_credentials_leave_the_url(url: str, clean: str, host: str, port: int) -> None:
    s = MqttSettings(url=url)
    assert (s.url, s.username, s.password.reveal()) == (clean, "pantau", PASSWORD)
    assert (s.host, s.port) == (host, port)
    assert PASSWORD not in repr(s)


def test_influx_credentials_leave_the_url() -> None:
    s = InfluxSettings(url="http://writer:hunter2@[::1]:8086/")
    assert (s.url, s.username, s.password.reveal()) == ("http://[::1]:8086/", "writer",
                                                        PASSWORD)
    assert PASSWORD not in repr(s)
    assert InfluxSettings(url="https://db:8086").url == "https://db:8086"


def test_an_unencoded_at_in_the_password_stays_out_of_the_url() -> None:
    s = MqttSettings(url="mqtt://pantau:hun@ter2@broker")
    assert (s.url, s.username, s.password.reveal()) == ("mqtt://broker", "pantau", "hun@ter2")


def test_percent_encoded_credentials_are_decoded() -> None:
    assert split_userinfo("mqtt://a%40b:p%3Ass%40@h:1") == ("mqtt://h:1", "a@b", "p:ss@")
    assert parse_mqtt_url("mqtt://a%40b:p%3Ass%40@h:1") == ("h", 1, "a@b", "p:ss@")


@pytest.mark.parametrize("url", [
    pytest.param("mqtt://pantau:hunter2@[::1", id="unclosed-ipv6"),
    pytest.param("mqtt://pantau:hunter2@broker:99999", id="port-range"),
    pytest.param("mqtt://pantau:hunter2@broker:http", id="port-text"),
    pytest.param("http://pantau:hunter2@broker:1883", id="scheme"),
    pytest.param("mqtt://pantau:hunter2@:1883", id="no-host"),
])
def test_a_bad_mqtt_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError, match=r"mqtt\.url") as err:
        MqttSettings(url=url)
    assert PASSWORD not in str(err.value) and "***@" in str(err.value)
    assert err.value.__cause__ is None  # and no chained ValueError quoting the URL:
    assert err.value.__context__ is None or err.value.__suppress_context__


@pytest.mark.parametrize("url", ["ftp://u:hunter2@db", "http://u:hunter2@db:port",
                                 "http://u:hunter2@[::1"])
def test_a_bad_influx_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError, match=r"influx\.url") as err:
        InfluxSettings(url=url)
    assert PASSWORD not in str(err.value)


@pytest.mark.parametrize(("url", "shown"), [
    pytest.param("mqtt://u:hunter2@h:1", "mqtt://***@h:1", id="plain"),
    pytest.param("mqtt://u:hun@ter2@h", "mqtt://***@h", id="at-in-password"),
    pytest.param("mqtt://h:1", "mqtt://h:1", id="none"),
    pytest.param("not a url", "not a url", id="not-a-url"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("url", "port", "tls"), [
    pytest.param("mqtt://broker", 1883, False, id="mqtt"),
    pytest.param("mqtts://broker", 8883, True, id="mqtts"),
    pytest.param("mqtts://u:hunter2@[::1]:18883", 18883, True, id="mqtts-port"),
])
def test_mqtts_means_tls_on_port_8883(url: str, port: int, tls: bool) -> None:
    s = MqttSettings(url=url)
    assert (s.port, s.tls) == (port, tls)
    assert PASSWORD not in s.url


def test_tls_settings_from_the_environment() -> None:
    s = load_settings(None, env={"PANTAU_MQTT_URL": "mqtts://broker",
                                 "PANTAU_MQTT_TLS_CA_FILE": "/etc/pantau/ca.crt",
                                 "PANTAU_MQTT_TLS_CERT_FILE": "/etc/pantau/pantau.crt",
                                 "PANTAU_MQTT_TLS_KEY_FILE": "/etc/pantau/pantau.key",
                                 "PANTAU_MQTT_TLS_VERIFY_HOSTNAME": "false"}).mqtt
    assert (s.tls, s.tls_ca_file, s.tls_key_file, s.tls_verify_hostname) == (
        True, "/etc/pantau/ca.crt", "/etc/pantau/pantau.key", False)


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"url": "mqtt://u:hunter2@broker", "tls_ca_file": "ca.crt"},
                 r"mqtt\.tls_ca_file set, but mqtt\.url 'mqtt://broker' is not TLS",
                 id="tls-files-without-mqtts"),
    pytest.param({"url": "mqtts://u:hunter2@broker", "tls_cert_file": "c.crt"},
                 "tls_cert_file and mqtt.tls_key_file go together", id="cert-without-key"),
    pytest.param({"url": "mqtts://u:hunter2@broker", "tls_key_file": "c.key"},
                 "tls_cert_file and mqtt.tls_key_file go together", id="key-without-cert"),
])
def test_inconsistent_tls_settings_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        MqttSettings(**kwargs)  # type: ignore[arg-type]
    assert PASSWORD not in str(err.value)
