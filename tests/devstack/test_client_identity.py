"""A device's client id is bound to its account on the devices listener (Debian's real
Mosquitto): device A connecting as ``pantau-ingest`` or as device B disconnects neither, and
Pantau's session keeps the messages queued for it while it is away."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pantau.devstack import PANTAU_USER, Mosquitto, stack_users

A, B = "test-device-a", "test-device-b"
INGEST_ID = "pantau-ingest"  # mqtt.client_id's default
TOPIC = f"pantau/kanigoro/{B}/telemetry"


class Device:
    """A paho client on the devices listener that records its disconnects."""

    def __init__(self, broker: Mosquitto, user: str, client_id: str, protocol: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol)
        self.client.username_pw_set(*broker.credentials(user))
        self.connected, self.disconnects = threading.Event(), 0
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda *a: self._gone()
        self.client.connect(broker.host, broker.device_port)
        self.client.loop_start()
        assert self.connected.wait(5), f"{user} as {client_id!r}: no CONNACK"

    def _gone(self) -> None:
        self.disconnects += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(spawn: Any, tmp_path: Path) -> Mosquitto:
    b: Mosquitto = spawn(Mosquitto(tmp_path, users=stack_users([A, B])))
    return b


@pytest.fixture
def devices(broker: Mosquitto) -> Iterator[Any]:
    made: list[Device] = []

    def connect(user: str, client_id: str, protocol: int = mqtt.MQTTv5) -> Device:
        made.append(Device(broker, user, client_id, protocol))
        return made[-1]

    yield connect
    for d in made:
        d.close()


def _ingest(mqtt_client: Any, broker: Mosquitto, *, clean_start: bool) -> Any:
    """Pantau's session as `pantau run` opens it, on the services listener."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    probe = mqtt_client(PANTAU_USER, client_id=INGEST_ID, clean_start=clean_start,
                        properties=props, broker=broker)
    probe.gone = threading.Event()
    probe.client.on_disconnect = lambda *a: probe.gone.set()
    return probe


@pytest.mark.parametrize("protocol", [pytest.param(mqtt.MQTTv311, id="v3.1.1"),
                                      pytest.param(mqtt.MQTTv5, id="v5")])
def test_a_device_cannot_take_over_pantau_or_another_device(broker: Mosquitto, devices: Any,
                                                            mqtt_client: Any,
                                                            protocol: int) -> None:
    ingest = _ingest(mqtt_client, broker, clean_start=True)
    ingest.subscribe("pantau/#")
    b = devices(B, B)
    devices(A, INGEST_ID, protocol)  # both connect: the broker names them test-device-a
    devices(A, B, protocol)
    assert b.client.publish(TOPIC, b"after", qos=1).wait_for_publish(5) is None
    assert ingest.get().payload == b"after"
    assert not ingest.gone.is_set() and ingest.client.is_connected()
    assert b.disconnects == 0 and b.client.is_connected()


def test_pantau_keeps_the_messages_queued_while_it_was_away(broker: Mosquitto, devices: Any,
                                                            mqtt_client: Any) -> None:
    """A device that connects as ``pantau-ingest`` with a clean start while Pantau is away
    would, if it got that session, discard it and the queue with it."""
    ingest = _ingest(mqtt_client, broker, clean_start=True)
    ingest.subscribe("pantau/#")
    ingest.client.disconnect()
    assert ingest.gone.wait(5)
    b = devices(B, B)
    for i in range(5):
        b.client.publish(TOPIC, str(i).encode(), qos=1).wait_for_publish(5)
    devices(A, INGEST_ID).close()
    back = _ingest(mqtt_client, broker, clean_start=False)
    assert sorted(m.payload for m in back.drain(1.0)) == [b"0", b"1", b"2", b"3", b"4"]
    broker.stop()  # flushes the log: every device connection carried its own name
    log = broker.log_path.read_text()
    assert log.count(f" as {INGEST_ID} ") == 2, log
    assert f" as {A} " in log
