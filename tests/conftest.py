"""Session-wide real services for the test-suite, started by the project's own code.

Fixtures (each service on free loopback ports in a pytest tmp dir, stopped at session end):

- ``mosquitto`` -> `Mosquitto`: the shipped ACL, users `PANTAU_USER`, `ADMIN_USER` (all
  topics), every device of the shipped registry and the spare devices ``test-device-a/b/c``.
  ``mosquitto.admin`` / ``mosquitto.credentials(device_id)`` give (username, password);
  ``mosquitto.url_for(user)`` an ``mqtt://user:pw@host:port`` URL.
- ``influx`` -> `InfluxDB1` with ``admin``/``writer``/``reader`` users (`InfluxUser`) on database
  ``pantau``; ``influx_db`` -> the name of a fresh database for one test (writer may write, reader
  may read), dropped afterwards.
- ``victoria`` -> `VictoriaMetrics`.
- ``alertmanager`` -> `Alertmanager` (Debian's 0.25, a receiver that delivers nowhere).
- ``mqtt_client`` -> a factory of connected paho clients (`MqttProbe`), disconnected after the test.
- ``spawn`` -> start a private service for one test (e.g. to kill it), stopped afterwards.

A missing binary is installed with `ensure_packages`; when that fails the fixture fails
(`pytest.fail`), never skips, so a green run always means the services really ran.
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices import topics
from devices.registry import default_registry_path, load_registry
from pantau.devstack import (
    DevstackError,
    InfluxDB1,
    Mosquitto,
    VictoriaMetrics,
    ensure_packages,
    stack_users,
)
from pantau.devstack._process import Daemon
from pantau.devstack.alertmanager import Alertmanager

SPARE_DEVICES = ("test-device-a", "test-device-b", "test-device-c")
_SERVICE_FIXTURES = {"mosquitto", "influx", "influx_db", "victoria", "mqtt_client", "spawn",
                     "alertmanager"}
D = TypeVar("D", bound=Daemon)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real service `services` (select with ``-m services``)."""
    for item in items:
        if _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def _require(*packages: str) -> None:
    try:
        ensure_packages(*packages)
    except DevstackError as e:  # never a skip: CI or not, a missing service is a failure
        pytest.fail(f"cannot install {packages}: {e}", pytrace=False)


def _started(daemon: D) -> D:
    try:
        daemon.start()
    except DevstackError as e:
        pytest.fail(str(e), pytrace=False)
    return daemon


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    _require("mosquitto", "mosquitto-clients")
    ids = [d.id for d in load_registry(default_registry_path()).devices]
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"),
                       users=stack_users([*ids, *SPARE_DEVICES]))
    yield _started(broker)
    broker.stop()


@pytest.fixture(autouse=True)
def _no_retained_status_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the session broker, clear the retained status messages its
    devices left (a simulator announces itself retained): a later test, or a Pantau it runs,
    would otherwise receive them as if they were new."""
    yield
    if "mosquitto" not in request.fixturenames:
        return
    broker: Mosquitto = request.getfixturevalue("mosquitto")
    registry = load_registry(default_registry_path())
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(*broker.admin)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        infos = [c.publish(topics.device_topics("pantau", d.site, d.id)[1], b"", qos=1,
                           retain=True) for d in registry.devices]
        for info in infos:
            info.wait_for_publish(timeout=5)
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    _require("influxdb")
    db = InfluxDB1(tmp_path_factory.mktemp("influxdb"))
    yield _started(db)
    db.stop()


_db_counter = itertools.count(1)


@pytest.fixture
def influx_db(influx: InfluxDB1, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database named after the test; writer may WRITE, reader may READ."""
    slug = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    name = influx.create_database(f"t{next(_db_counter)}_{slug}")
    yield name
    influx.drop_database(name)


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    _require("victoria-metrics")
    vm = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    yield _started(vm)
    vm.stop()


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """Debian's Alertmanager with a receiver that delivers nowhere; tests that need their own
    routes and receivers `spawn` one with their configuration."""
    _require("prometheus-alertmanager")
    am = Alertmanager(tmp_path_factory.mktemp("alertmanager"))
    yield _started(am)
    am.stop()


@pytest.fixture
def spawn() -> Iterator[Callable[[D], D]]:
    """``spawn(Mosquitto(tmp_path, users=...))``: start a private service, stopped after the
    test, whatever the test did to it."""
    daemons: list[Daemon] = []

    def start(daemon: D) -> D:
        _require({"mosquitto": "mosquitto", "influxd": "influxdb",
                  "victoria-metrics": "victoria-metrics",
                  "alertmanager": "prometheus-alertmanager"}[daemon.name])
        daemons.append(daemon)
        return _started(daemon)

    yield start
    for d in reversed(daemons):
        d.stop()


class MqttProbe:
    """A paho 2.x client connected on a background thread, recording what comes back.

    ``connack`` is the CONNACK reason code (None until it came); ``messages`` a queue of
    received `mqtt.MQTTMessage`; `publish()` returns the PUBACK reason code (v3.1.1 has none,
    so paho reports Success for every acknowledged publish).
    """

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.connack: ReasonCode | None = None
        self.connected = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        client.on_publish = self._on_publish

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connack = rc
        self.connected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._acked:
            self._acks[mid] = rc
            self._acked.notify_all()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0, *,
                  retained: bool = True) -> None:
        """Subscribe and wait for the SUBACK. ``retained=False`` (MQTT v5): only messages
        published from now on, not what earlier tests left retained on the shared broker."""
        done = threading.Event()
        self.client.on_subscribe = lambda *_: done.set()
        if retained:
            self.client.subscribe(topic, qos=qos)
        else:
            self.client.subscribe(topic, options=SubscribeOptions(qos=qos, retainHandling=2))
        assert done.wait(timeout), f"no SUBACK for {topic!r}"

    def publish(self, topic: str, payload: bytes | str, qos: int = 1,
                timeout: float = 5.0) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=qos)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self._acks, timeout), \
                f"no PUBACK for {topic!r}"
            return self._acks.pop(info.mid)

    def get(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def drain(self, wait: float = 0.5) -> list[mqtt.MQTTMessage]:
        """Everything that arrives within ``wait`` seconds."""
        out = []
        try:
            while True:
                out.append(self.messages.get(timeout=wait))
        except queue.Empty:
            return out


MqttFactory = Callable[..., MqttProbe]


@pytest.fixture
def mqtt_client(mosquitto: Mosquitto) -> Iterator[MqttFactory]:
    """``mqtt_client(username, password=None, *, protocol=5, client_id="", manual_ack=False,
    properties=None, clean_start=True, broker=None, wait=True)`` -> `MqttProbe` connected
    to ``broker`` (default: the session's); the password defaults to the user's own. v5 only:
    ``clean_start=False`` resumes the session of ``client_id``."""
    probes: list[MqttProbe] = []

    def connect(username: str | None, password: str | None = None, *, protocol: int = 5,
                client_id: str = "", manual_ack: bool = False,
                properties: Properties | None = None, clean_start: bool = True,
                broker: Mosquitto | None = None, wait: bool = True) -> MqttProbe:
        broker = broker or mosquitto
        version = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=version, manual_ack=manual_ack)
        if username is not None:
            client.username_pw_set(username, password if password is not None
                                   else broker.credentials(username)[1])
        probe = MqttProbe(client)
        probes.append(probe)
        if protocol == 5:
            client.connect(broker.host, broker.port, clean_start=clean_start,
                           properties=properties)
        else:
            client.connect(broker.host, broker.port)
        client.loop_start()
        assert probe.connected.wait(5.0), "no CONNACK"
        if wait:
            assert probe.connack is not None
            assert not probe.connack.is_failure, f"{username} refused: {probe.connack}"
        return probe

    yield connect
    for p in probes:
        p.client.disconnect()
        p.client.loop_stop()
