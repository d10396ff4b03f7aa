"""MQTT over TLS against Debian's real Mosquitto with certificates made by `make_certs`: a plain
paho client and Pantau's own client (`ingest.mqtt_connect`) connect when the broker's
certificate verifies; one from another CA, or for another host, is refused with the reason
and no secret; the services listener wants Pantau's client certificate."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest import mqtt_connect
from ingest.mqtt_connect import MqttTlsError
from ingest.settings import MqttSettings
from pantau.devstack import (
    ADMIN_USER,
    PANTAU_USER,
    DevstackError,
    Mosquitto,
    ensure_packages,
    stack_users,
)
from pantau.devstack.certs import CertFiles, make_certs

DEVICE = "test-device-a"


def _started(broker: Mosquitto) -> Mosquitto:
    try:
        ensure_packages("mosquitto", "openssl")
        broker.start()
    except DevstackError as e:  # a missing service fails, never skips
        pytest.fail(str(e), pytrace=False)
    return broker


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    work = tmp_path_factory.mktemp("mosquitto-tls")
    broker = _started(Mosquitto(work / "broker", users=stack_users([DEVICE]),
                                tls=make_certs(work / "certs")))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """Another CA, whose server certificate names only ``mqtt.example.org``."""
    return make_certs(tmp_path_factory.mktemp("other-ca"), hosts=("mqtt.example.org",))


def _pantau(broker: Mosquitto, port: int, *, ca: Path, client: bool = True,
            verify_hostname: bool = True) -> MqttSettings:
    assert broker.tls is not None
    files = {"tls_cert_file": str(broker.tls.client_cert),
             "tls_key_file": str(broker.tls.client_key)} if client else {}
    return MqttSettings(url=broker.url_for(PANTAU_USER, port=port, scheme="mqtts"),
                        tls_ca_file=str(ca), tls_verify_hostname=verify_hostname,
                        client_id=f"pantau-tls-{port}-{client}", **files)


def _connack(settings: MqttSettings) -> Any:
    """Connect Pantau's client as `pantau run` does; the CONNACK reason code, or None when the
    broker closed the connection without one."""
    answered = threading.Event()
    result: list[Any] = [None]

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        result[0] = rc
        answered.set()

    client = mqtt_connect.new_client(settings, lambda topic, payload, mid: None)
    client.on_connect = on_connect
    client.on_disconnect = lambda *_: answered.set()
    mqtt_connect.connect(client, settings, mqtt_connect.connect_properties(settings))
    client.loop_start()
    try:
        assert answered.wait(5), "neither CONNACK nor disconnect"
        return result[0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_plain_paho_device_publishes_over_tls(tls_broker: Mosquitto, mqtt_client: Any) -> None:
    assert tls_broker.tls is not None
    listener = mqtt_client(ADMIN_USER, broker=tls_broker)
    listener.subscribe("pantau/#")
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5)
    device.username_pw_set(*tls_broker.credentials(DEVICE))
    device.tls_set_context(ssl.create_default_context(cafile=str(tls_broker.tls.ca)))
    device.connect(tls_broker.host, tls_broker.device_tls_port)
    device.loop_start()
    try:
        info = device.publish(f"pantau/kanigoro/{DEVICE}/telemetry", b"over tls", qos=1)
        info.wait_for_publish(5)
        msg = listener.get()
        assert (msg.topic, msg.payload) == (f"pantau/kanigoro/{DEVICE}/telemetry", b"over tls")
    finally:
        device.disconnect()
        device.loop_stop()


def test_pantau_connects_with_its_client_certificate(tls_broker: Mosquitto) -> None:
    assert tls_broker.tls is not None
    rc = _connack(_pantau(tls_broker, tls_broker.tls_port, ca=tls_broker.tls.ca))
    assert rc is not None and not rc.is_failure, rc


def test_the_services_listener_refuses_a_client_without_certificate(tls_broker: Mosquitto
                                                                    ) -> None:
    assert tls_broker.tls is not None
    settings = _pantau(tls_broker, tls_broker.tls_port, ca=tls_broker.tls.ca, client=False)
    try:
        rc = _connack(settings)
    except OSError:  # TLS 1.2 fails the handshake; 1.3 closes right after it
        return
    assert rc is None, f"connected without a client certificate: {rc}"


def test_a_server_certificate_from_another_ca_is_refused(tls_broker: Mosquitto,
                                                         other_ca: CertFiles) -> None:
    settings = _pantau(tls_broker, tls_broker.tls_port, ca=other_ca.ca)
    # Mosquitto sends its CA with the chain: OpenSSL says so rather than "unable to get
    # local issuer certificate".
    with pytest.raises(MqttTlsError, match="certificate was refused: self-signed certificate "
                                           "in certificate chain") as err:
        _connack(settings)
    assert tls_broker.credentials(PANTAU_USER)[1] not in str(err.value)


def test_a_server_certificate_for_another_host_is_refused(tls_broker: Mosquitto,
                                                          other_ca: CertFiles,
                                                          tmp_path: Path) -> None:
    """The chain verifies (the CA is trusted) but the certificate names another host; with
    ``tls_verify_hostname`` off the same broker is accepted."""
    broker = _started(Mosquitto(tmp_path, users=tls_broker.users, tls=other_ca))
    try:
        settings = _pantau(broker, broker.device_tls_port, ca=other_ca.ca, client=False)
        with pytest.raises(MqttTlsError, match="refused: IP address mismatch") as err:
            _connack(settings)
        assert broker.credentials(PANTAU_USER)[1] not in str(err.value)
        rc = _connack(_pantau(broker, broker.device_tls_port, ca=other_ca.ca, client=False,
                              verify_hostname=False))
        assert rc is not None and not rc.is_failure, rc
    finally:
        broker.stop()


@pytest.mark.parametrize(("files", "named"), [
    pytest.param({"tls_ca_file": "/nonexistent/ca.crt"}, "mqtt.tls_ca_file", id="no-ca"),
    pytest.param({"tls_cert_file": "CA", "tls_key_file": "CA"}, "mqtt.tls_cert_file",
                 id="cert-as-key"),
])
def test_a_tls_file_that_cannot_be_loaded_is_named(tls_broker: Mosquitto,
                                                   files: dict[str, str], named: str) -> None:
    assert tls_broker.tls is not None
    files = {k: str(tls_broker.tls.ca) if v == "CA" else v for k, v in files.items()}
    settings = MqttSettings(url="mqtts://pantau:hunter2@127.0.0.1",
                            **files)  # type: ignore[arg-type]
    with pytest.raises(MqttTlsError, match=named) as err:
        mqtt_connect.new_client(settings, lambda topic, payload, mid: None)
    assert "hunter2" not in str(err.value) and "BEGIN" not in str(err.value)
