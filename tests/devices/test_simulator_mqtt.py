"""The simulator on a real Mosquitto running the provisioned credentials and ACL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from devices.catalogue import load_rivers
from devices.provision import load_credentials, provision, reload_broker
from devices.registry import default_registry_path, load_registry
from devices.simulator import Simulator
from devices.simulator.publish import DevicePublisher, MuxPublisher, run
from pantau.devstack import ADMIN_USER, Mosquitto, new_password
from tests.conftest import MqttFactory

PATH = default_registry_path()
REGISTRY = load_registry(PATH)
T0 = 1_764_288_000.0


def _broker(tmp_path: Path, spawn: Callable[[Mosquitto], Mosquitto]) -> tuple[Mosquitto,
                                                                              dict[str, str]]:
    mq = spawn(Mosquitto(tmp_path, users={ADMIN_USER: new_password()}))
    provision(REGISTRY, tmp_path, extra={"sim-gateway": ("topic write pantau/#",)})
    assert mq.pid is not None
    reload_broker(mq.pid)
    creds = load_credentials(tmp_path / "credentials.json")
    mq.wait_accepts("pantau", creds["pantau"])  # reloaded in the broker's next loop iteration
    return mq, creds


def test_devices_publish_with_their_own_clients_and_lwt(
        tmp_path: Path, spawn: Callable[[Mosquitto], Mosquitto],
        mqtt_client: MqttFactory) -> None:
    mq, creds = _broker(tmp_path, spawn)
    ingest = mqtt_client("pantau", creds["pantau"], broker=mq)
    ingest.subscribe("pantau/#")
    sim = Simulator(REGISTRY, scenario_name="normal", seed=3, start_s=T0,
                    rivers=load_rivers(PATH, REGISTRY), faults={"offline": 1.0})
    pub = DevicePublisher(mq.host, mq.port, sim, creds)
    try:
        counts = run(sim, pub.publish, pump=pub.pump, flat_out=True, duration_s=900,
                     report=lambda _: None)
        deadline = time.monotonic() + 3
        while pub.unacked and time.monotonic() < deadline:
            pub.pump(0.05)
        assert pub.unacked == 0  # every publish was acknowledged: the ACL let it through
        got = ingest.drain(1.0)
    finally:
        pub.close()
    tele = [m for m in got if m.topic.endswith("/telemetry")]
    assert len(tele) == counts["telemetry"]
    assert {m.topic.split("/")[2] for m in tele} == {d.id for d in REGISTRY.devices}
    online = [m for m in got if m.payload == b"online"]
    assert len(online) == len(REGISTRY.devices)


def test_offline_fault_makes_the_broker_publish_the_lwt(
        tmp_path: Path, spawn: Callable[[Mosquitto], Mosquitto],
        mqtt_client: MqttFactory) -> None:
    mq, creds = _broker(tmp_path, spawn)
    ingest = mqtt_client("pantau", creds["pantau"], broker=mq)
    ingest.subscribe("pantau/+/+/status")
    sim = Simulator(REGISTRY, seed=3, start_s=T0, faults={"offline": 1.0})
    pub = DevicePublisher(mq.host, mq.port, sim, creds)
    try:  # every device drops off within 2 simulated hours
        run(sim, pub.publish, pump=pub.pump, flat_out=True, duration_s=float(sim.off_from.max()
            - T0 + 10), report=lambda _: None)
        got = ingest.drain(1.5)
    finally:
        pub.close()
    offline = {m.topic.split("/")[2] for m in got if m.payload == b"offline"}
    assert offline == {d.id for d in REGISTRY.devices}  # sent by the broker, not the device


def test_multiplexed_mode(tmp_path: Path, spawn: Callable[[Mosquitto], Mosquitto],
                          mqtt_client: MqttFactory) -> None:
    mq, creds = _broker(tmp_path, spawn)
    ingest = mqtt_client("pantau", creds["pantau"], broker=mq)
    ingest.subscribe("pantau/+/+/telemetry")
    sim = Simulator(REGISTRY, seed=4, start_s=T0)
    pub = MuxPublisher(mq.host, mq.port, "sim-gateway", creds["sim-gateway"])
    try:
        counts = run(sim, pub.publish, pump=pub.pump, flat_out=True, duration_s=1800,
                     report=lambda _: None)
        got = ingest.drain(1.0)
    finally:
        pub.close()
    assert len(got) == counts["telemetry"]
