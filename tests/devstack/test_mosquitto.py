"""The shipped broker config against Debian's real Mosquitto: auth, ACL, flow control,
persistence."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pantau.devstack import ADMIN_USER, PANTAU_USER, Mosquitto, stack_users
from pantau.devstack.packages import binary

NOT_AUTHORIZED = 0x87  # MQTT v5 reason code, CONNACK and PUBACK
NO_MATCHING_SUBSCRIBERS = 0x10


def _props(**values: Any) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    for k, v in values.items():
        setattr(props, k, v)
    return props


@pytest.mark.parametrize("protocol", [pytest.param(4, id="v3.1.1"), pytest.param(5, id="v5")])
@pytest.mark.parametrize(("username", "password"), [
    pytest.param(None, None, id="anonymous"),
    pytest.param("test-device-a", "wrong-password", id="wrong-password"),
    pytest.param("no-such-user", "x", id="unknown-user"),
])
def test_refuses_anonymous_and_bad_credentials(mqtt_client: Any, username: str | None,
                                               password: str | None, protocol: int) -> None:
    probe = mqtt_client(username, password, protocol=protocol, wait=False)
    assert probe.connack is not None
    assert probe.connack.is_failure
    # Mosquitto 2.0.11 answers "Not authorized" (v5 0x87, v3.1.1 code 5) to all three, never
    # "Bad user name or password": a prober cannot tell a user exists.
    assert probe.connack.getName() == "Not authorized"


def test_device_publishes_its_own_telemetry(mqtt_client: Any) -> None:
    ingest = mqtt_client(PANTAU_USER)
    ingest.subscribe("pantau/#", retained=False)
    device = mqtt_client("test-device-a")
    for kind in ("telemetry", "status"):
        assert device.publish(f"pantau/kanigoro/test-device-a/{kind}", kind).value == 0
        msg = ingest.get()
        assert (msg.topic, msg.payload) == (f"pantau/kanigoro/test-device-a/{kind}",
                                            kind.encode())


@pytest.mark.parametrize("topic", [
    pytest.param("pantau/kanigoro/test-device-b/telemetry", id="other-device"),
    pytest.param("pantau/kanigoro/test-device-a/config", id="own-device-other-kind"),
    pytest.param("pantau/deadletter/x", id="deadletter"),
    pytest.param("pantau/test-device-a/telemetry", id="no-site-level"),
])
def test_device_cannot_publish_elsewhere(mqtt_client: Any, topic: str) -> None:
    ingest = mqtt_client(PANTAU_USER)
    ingest.subscribe("pantau/#", retained=False)
    v5 = mqtt_client("test-device-a")
    assert v5.publish(topic, "spoof").value == NOT_AUTHORIZED
    v311 = mqtt_client("test-device-a", protocol=4)
    assert v311.publish(topic, "spoof").value == 0  # v3.1.1: PUBACKed, then silently dropped
    assert ingest.drain() == []


def test_devices_and_ingest_cannot_read_or_write_what_they_should_not(mqtt_client: Any) -> None:
    admin = mqtt_client(ADMIN_USER)
    snoop = mqtt_client("test-device-b")
    snoop.subscribe("#")  # granted by the broker, but no message is delivered (read denied)
    ingest = mqtt_client(PANTAU_USER)
    # Success, not "no matching subscribers": the subscription matches, and the read check
    # happens at delivery, where it drops the message.
    assert admin.publish("pantau/kanigoro/test-device-a/telemetry", "x").value == 0
    # The ingest identity may only write dead letters.
    assert ingest.publish("pantau/kanigoro/test-device-a/telemetry", "x").value \
        == NOT_AUTHORIZED
    assert ingest.publish("pantau/deadletter/bad_json", "x").value == 0
    assert snoop.drain() == []


def _publish_many(mqtt_client: Any, topic: str, n: int) -> None:
    admin = mqtt_client(ADMIN_USER)
    for i in range(n):
        admin.client.publish(f"{topic}/{i}", str(i), qos=1)
    admin.publish(f"{topic}/last", "last")  # PUBACKs come in order: all are in the broker


def test_receive_maximum_bounds_the_first_window(mqtt_client: Any) -> None:
    sub = mqtt_client(ADMIN_USER, client_id="rm-first", manual_ack=True,
                      properties=_props(ReceiveMaximum=10))
    sub.subscribe("rm1/#")
    _publish_many(mqtt_client, "rm1", 100)
    assert len(sub.drain()) == 10


def _mosquitto_version() -> str:
    out = subprocess.run([binary("mosquitto"), "-h"], capture_output=True, text=True,
                         check=False).stdout
    return out.split("version", 1)[1].split()[0]


@pytest.mark.parametrize(("ack", "released"), [
    # Mosquitto 2.0.11 refills the window counting only messages older than the acked one:
    # acking the oldest releases a whole new window (unacked grows to 19, 28, ...).
    pytest.param("oldest", 10, id="oldest"),
    pytest.param("newest", 1, id="newest"),
])
def test_receive_maximum_window_after_an_ack(mqtt_client: Any, ack: str, released: int) -> None:
    sub = mqtt_client(ADMIN_USER, client_id=f"rm-{ack}", manual_ack=True,
                      properties=_props(ReceiveMaximum=10))
    sub.subscribe("rm2/#")
    _publish_many(mqtt_client, "rm2", 100)
    first = sub.drain()
    assert len(first) == 10
    msg = first[0] if ack == "oldest" else first[-1]
    sub.client.ack(msg.mid, msg.qos)
    more = len(sub.drain())
    if _mosquitto_version() == "2.0.11":
        assert more == released
    else:  # a fixed broker slides the window by one; a worse one still bounds by a window
        assert 1 <= more <= 10


def test_without_receive_maximum_max_inflight_messages_applies(mqtt_client: Any,
                                                               mosquitto: Mosquitto) -> None:
    assert mosquitto.max_inflight_messages == 20000
    sub = mqtt_client(ADMIN_USER, client_id="no-rm", manual_ack=True, protocol=4)
    sub.subscribe("rm3/#")
    _publish_many(mqtt_client, "rm3", 300)
    assert len(sub.drain()) == 301  # well under the 20000 cap: nothing held back


def _queue_for_offline_session(mqtt_client: Any, broker: Mosquitto, n: int) -> None:
    session = _props(SessionExpiryInterval=3600)
    sub = mqtt_client(ADMIN_USER, client_id="durable", broker=broker, properties=session,
                      clean_start=False)
    sub.subscribe("q/#")
    sub.client.disconnect()
    sub.client.loop_stop()
    pub = mqtt_client(ADMIN_USER, broker=broker)
    for i in range(n):
        assert pub.publish(f"q/{i}", str(i)).value == 0


def _collect_session(mqtt_client: Any, broker: Mosquitto) -> list[bytes]:
    props = _props(SessionExpiryInterval=3600)
    sub = mqtt_client(ADMIN_USER, client_id="durable", broker=broker, properties=props,
                      clean_start=False)  # paho's default would discard the session
    return sorted(m.payload for m in sub.drain(1.0))


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_queued_messages_survive_a_broker_restart(mqtt_client: Any, spawn: Any,
                                                  tmp_path: Path, how: str) -> None:
    broker = spawn(Mosquitto(tmp_path, users=stack_users([])))
    _queue_for_offline_session(mqtt_client, broker, 50)  # every publish acknowledged
    if how == "kill":
        # A kill -9 keeps only the last snapshot: wait for one taken after the messages were
        # queued (due within autosave_interval; polled, since a loaded machine delays it).
        queued = time.time()
        db = broker.data_dir / "mosquitto.db"
        deadline = queued + broker.autosave_interval + 15.0
        while not (db.exists() and db.stat().st_mtime > queued + 0.01):
            assert time.time() < deadline, "Mosquitto wrote no snapshot after the messages"
            time.sleep(0.1)
        broker.kill()
    else:
        broker.stop()  # a clean stop writes the snapshot
    broker.start()
    assert _collect_session(mqtt_client, broker) == sorted(str(i).encode() for i in range(50))
