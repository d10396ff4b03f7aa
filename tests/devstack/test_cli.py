"""``python -m pantau.devstack up`` end to end: env.sh works for Pantau's settings (over TLS
too), devices log in on their listener, every secret is 0600, and a SIGTERM stops both
daemons."""

from __future__ import annotations

import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from devices.registry import default_registry_path, load_registry
from ingest.settings import parse_mqtt_url
from pantau.devstack._http import request


def _env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, value = line.removeprefix("export ").split("=", 1)
            env[key] = shlex.split(value)[0]
    return env


def _mqtt_login(url: str, user: str, password: str, tls: ssl.SSLContext | None = None) -> bool:
    host, port, _, _ = parse_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set_context(tls)
    client.connect(host, port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        return client.is_connected()
    finally:
        client.disconnect()
        client.loop_stop()


def test_up_writes_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pantau.devstack", "up", "--dir",
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "env.sh").exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "no env.sh within 60 s"
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children()
        assert {c.name() for c in children} == {"mosquitto", "influxd"}
        env = _env(tmp_path / "env.sh")
        host, _port, user, password = parse_mqtt_url(env["PANTAU_MQTT_URL"])
        assert (host, user) == ("127.0.0.1", "pantau")
        assert _mqtt_login(env["PANTAU_MQTT_URL"], user, password)
        devices = json.loads((tmp_path / "devices.json").read_text())
        assert set(devices) == {d.id for d in load_registry(default_registry_path()).devices}
        first = next(iter(devices))
        assert _mqtt_login(env["DEVSTACK_MQTT_DEVICES_URL"], first, devices[first])
        tls = ssl.create_default_context(cafile=env["DEVSTACK_MQTT_TLS_CA_FILE"])
        tls.load_cert_chain(env["DEVSTACK_MQTT_TLS_CERT_FILE"], env["DEVSTACK_MQTT_TLS_KEY_FILE"])
        assert _mqtt_login(env["DEVSTACK_MQTT_TLS_URL"], user, password, tls)
        assert env["PANTAU_INFLUX_API"] == "v1"
        resp = request("POST", f"{env['PANTAU_INFLUX_URL']}/write?db="
                       f"{env['PANTAU_INFLUX_DATABASE']}", data=b"m v=1 1",
                       auth=(env["PANTAU_INFLUX_USERNAME"], env["PANTAU_INFLUX_PASSWORD"]))
        assert resp.status == 204, resp
        for name in ("env.sh", "devices.json", "influxdb/credentials.json", "mosquitto/passwd",
                     "mosquitto/acl", "certs/ca.key", "certs/server.key", "certs/client.key"):
            assert oct(os.stat(tmp_path / name).st_mode & 0o777) == "0o600", name
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "devstack: stopped" in out
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


def test_help() -> None:
    out = subprocess.run([sys.executable, "-m", "pantau.devstack", "up", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--dir" in out
