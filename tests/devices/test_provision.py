"""Provisioning: generated credentials and ACL, checked against a real Mosquitto."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from devices.provision import ProvisionError, load_credentials, provision, reload_broker
from devices.registry import (
    Device,
    Registry,
    default_registry_path,
    load_registry,
    parse_registry,
)
from pantau.devstack import ADMIN_USER, Mosquitto, new_password
from tests.conftest import MqttFactory, MqttProbe

REGISTRY = load_registry(default_registry_path())
Broker = tuple[Mosquitto, dict[str, str]]


def _device(device_id: str) -> Device:
    d = REGISTRY.device(device_id)
    assert d is not None, device_id
    return d


A, B = _device("wl-brantas-kanigoro"), _device("aq-wlingi")
A_TELEMETRY = f"pantau/{A.site}/{A.id}/telemetry"
B_TELEMETRY = f"pantau/{B.site}/{B.id}/telemetry"


@pytest.fixture
def broker(tmp_path: Path, spawn: Callable[[Mosquitto], Mosquitto]) -> Broker:
    """A private broker running on the files `provision()` wrote (loaded by SIGHUP)."""
    mq = spawn(Mosquitto(tmp_path, users={ADMIN_USER: new_password()}))
    provision(REGISTRY, tmp_path)
    assert mq.pid is not None
    reload_broker(mq.pid)
    creds = load_credentials(tmp_path / "credentials.json")
    mq.wait_accepts("pantau", creds["pantau"])  # reloaded in the broker's next loop iteration
    return mq, creds


def _connect(mqtt_client: MqttFactory, broker: Broker,
             user: str, password: str | None = None, *, wait: bool = True) -> MqttProbe:
    mq, creds = broker
    return mqtt_client(user, creds[user] if password is None else password, broker=mq,
                       wait=wait)


def test_device_publishes_under_its_own_topic(
        mqtt_client: MqttFactory, broker: Broker) -> None:
    ingest = _connect(mqtt_client, broker, "pantau")
    ingest.subscribe("pantau/#")
    device = _connect(mqtt_client, broker, A.id)
    assert device.publish(A_TELEMETRY, b'{"ts": 1, "values": {}}') == ReasonCode(4, "Success")
    msg = ingest.get()
    assert (msg.topic, msg.payload) == (A_TELEMETRY, b'{"ts": 1, "values": {}}')


@pytest.mark.parametrize("topic", [
    pytest.param(B_TELEMETRY, id="another-device"),
    pytest.param(f"pantau/srengat/{A.id}/telemetry", id="own-id-other-site"),
    pytest.param(f"pantau/{A.site}/{A.id}/commands", id="other-channel"),
    pytest.param("pantau/deadletter/x", id="deadletter"),
])
def test_device_is_refused_elsewhere(mqtt_client: MqttFactory,
                                     broker: Broker,
                                     topic: str) -> None:
    ingest = _connect(mqtt_client, broker, "pantau")
    ingest.subscribe("pantau/#")
    device = _connect(mqtt_client, broker, A.id)
    # Mosquitto 2 answers a refused v5 QoS 1 publish with PUBACK 0x87 and drops the message.
    assert device.publish(topic, b"x").value == 0x87
    assert ingest.drain(0.5) == []


def test_device_reads_nothing(mqtt_client: MqttFactory,
                              broker: Broker) -> None:
    spy = _connect(mqtt_client, broker, B.id)
    spy.subscribe("pantau/#")
    _connect(mqtt_client, broker, A.id).publish(A_TELEMETRY, b"x")
    assert spy.drain(0.5) == []


def test_wrong_password_is_refused(mqtt_client: MqttFactory,
                                   broker: Broker) -> None:
    probe = _connect(mqtt_client, broker, A.id, "not-the-password", wait=False)
    assert probe.connack is not None
    assert probe.connack.is_failure
    stranger = _connect(mqtt_client, broker, "test-device-a", "whatever", wait=False)
    assert stranger.connack is not None
    assert stranger.connack.is_failure


def test_regeneration_keeps_passwords_and_files_are_private(tmp_path: Path) -> None:
    first = provision(REGISTRY, tmp_path)
    before = load_credentials(first.credentials)
    assert set(before) == {"pantau", *(d.id for d in REGISTRY.devices)}
    assert len(set(before.values())) == len(before)  # every password differs
    smaller = Registry(sites=REGISTRY.sites, devices=REGISTRY.devices[1:])
    again = provision(smaller, tmp_path)
    after = load_credentials(again.credentials)
    assert again.new_users == ()
    assert again.removed_users == (REGISTRY.devices[0].id,)
    assert after == {u: p for u, p in before.items() if u != REGISTRY.devices[0].id}
    for p in (again.credentials, again.passwd, again.acl):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    acl = again.acl.read_text()
    assert f"user {A.id}\ntopic write {A_TELEMETRY}\ntopic write pantau/{A.site}/{A.id}/status\n" \
        in acl
    assert "pattern" not in acl


def test_device_named_like_the_ingest_user_is_refused(tmp_path: Path) -> None:
    reg = parse_registry({"devices": [{"id": "pantau", "kind": "k", "site": "x", "lat": -8,
                                       "lon": 112, "metrics": {"x": {"unit": "u"}}}]})
    with pytest.raises(ProvisionError, match="'pantau' collides with a service user"):
        provision(reg, tmp_path)


def test_unreadable_credentials_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text(json.dumps(["not", "a", "mapping"]))
    with pytest.raises(ProvisionError, match="username -> password"):
        provision(REGISTRY, tmp_path)
