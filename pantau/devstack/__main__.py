"""``python -m pantau.devstack``: install the Debian packages, or run a local stack.

``ensure`` installs what is missing. ``up --dir DIR`` starts Mosquitto (with one MQTT user per
device of the registry, `PANTAU_USER` and the test/admin identity; a services listener, a
devices listener that binds each device's client id to its username, and both again over TLS
with certificates made in ``DIR/certs``) and InfluxDB 1.x, writes ``DIR/env.sh`` (the
``PANTAU_*`` settings for Pantau, plus ``DEVSTACK_*`` helpers) and ``DIR/devices.json``
(device id -> MQTT password), and runs until SIGINT/SIGTERM, then stops both. Credentials
are random; InfluxDB's and the certificates are reused when ``DIR`` is reused. Every file
holding a secret is created with mode 0600 (`write_atomic`), never widened for an instant.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from pathlib import Path

from core.errors import PantauError
from devices.credentials import PANTAU_USER
from devices.provision import write_atomic
from devices.registry import Registry, default_registry_path, load_registry
from pantau.devstack.certs import DEFAULT_HOSTS, make_certs
from pantau.devstack.influx import InfluxDB1
from pantau.devstack.mosquitto import ADMIN_USER, Mosquitto, stack_users
from pantau.devstack.packages import ALL_PACKAGES, ensure_packages


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pantau.devstack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ens = sub.add_parser("ensure", help="apt-get install the missing Debian packages")
    ens.add_argument("packages", nargs="*", metavar="PACKAGE",
                     help=f"default: all of {', '.join(ALL_PACKAGES)}")
    up = sub.add_parser("up", help="run Mosquitto + InfluxDB in the foreground until Ctrl-C")
    up.add_argument("--dir", required=True, type=Path, help="work dir: configs, data, logs, "
                    "env.sh, devices.json (reuse it to keep the data)")
    up.add_argument("--registry", type=Path, default=None,
                    help="device registry YAML (default: the shipped Blitar registry)")
    up.add_argument("--mqtt-port", type=int, default=None, help="default: a free port")
    up.add_argument("--influx-port", type=int, default=None, help="default: a free port")
    up.add_argument("--database", default="pantau", help="InfluxDB database (default: pantau)")
    certs = sub.add_parser("certs", help="make a CA and the broker's TLS certificate (openssl), "
                           "e.g. for deploy/mosquitto/certs; kept if already there")
    certs.add_argument("--out", required=True, type=Path, help="directory for the files")
    certs.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                       help="a name or address devices reach the broker by (repeat; default: "
                       "127.0.0.1, ::1, localhost)")
    return p


def _env_sh(mqtt: Mosquitto, influx: InfluxDB1, devices_json: Path) -> str:
    admin_user, admin_pw = mqtt.admin
    tls = {}
    if mqtt.tls:  # Pantau over TLS: PANTAU_MQTT_URL=$DEVSTACK_MQTT_TLS_URL and these three
        tls = {"DEVSTACK_MQTT_TLS_URL": mqtt.url_for(PANTAU_USER, port=mqtt.tls_port,
                                                      scheme="mqtts"),
               "DEVSTACK_MQTT_TLS_CA_FILE": str(mqtt.tls.ca),
               "DEVSTACK_MQTT_TLS_CERT_FILE": str(mqtt.tls.client_cert),
               "DEVSTACK_MQTT_TLS_KEY_FILE": str(mqtt.tls.client_key),
               "DEVSTACK_MQTT_DEVICES_TLS_URL": f"mqtts://{mqtt.host}:{mqtt.device_tls_port}"}
    env = {
        "PANTAU_MQTT_URL": mqtt.url_for(PANTAU_USER),
        "PANTAU_INFLUX_URL": influx.url,
        "PANTAU_INFLUX_API": "v1",
        "PANTAU_INFLUX_DATABASE": influx.database,
        "PANTAU_INFLUX_USERNAME": influx.writer.username,
        "PANTAU_INFLUX_PASSWORD": influx.writer.password,
        "PANTAU_INFLUX_READ_USERNAME": influx.reader.username,
        "PANTAU_INFLUX_READ_PASSWORD": influx.reader.password,
        "DEVSTACK_MQTT_ADMIN_URL": mqtt.url_for(admin_user),
        "DEVSTACK_MQTT_ADMIN_USERNAME": admin_user,
        "DEVSTACK_MQTT_ADMIN_PASSWORD": admin_pw,
        "DEVSTACK_MQTT_DEVICES_JSON": str(devices_json),
        "DEVSTACK_MQTT_DEVICES_URL": mqtt.device_url,
        **tls,
        "DEVSTACK_INFLUX_READER_USERNAME": influx.reader.username,
        "DEVSTACK_INFLUX_READER_PASSWORD": influx.reader.password,
        "DEVSTACK_INFLUX_ADMIN_USERNAME": influx.admin.username,
        "DEVSTACK_INFLUX_ADMIN_PASSWORD": influx.admin.password,
    }
    return ("# Written by `python -m pantau.devstack up`; secrets: keep this file private.\n"
            + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))


def write_stack_files(workdir: Path, registry: Registry, mqtt: Mosquitto,
                      influx: InfluxDB1) -> tuple[Path, Path]:
    """Write ``devices.json`` and ``env.sh`` (both 0600 from their creation); their paths."""
    devices_json = workdir / "devices.json"
    write_atomic(devices_json, json.dumps(
        {d.id: mqtt.users[d.id] for d in registry.devices}, indent=2) + "\n")
    env_sh = workdir / "env.sh"
    write_atomic(env_sh, _env_sh(mqtt, influx, devices_json))
    return devices_json, env_sh


def up(args: argparse.Namespace) -> None:
    workdir: Path = args.dir.resolve()
    registry = load_registry(args.registry or default_registry_path())
    ensure_packages("mosquitto", "influxdb", "openssl")
    users = stack_users(d.id for d in registry.devices)
    mqtt = Mosquitto(workdir / "mosquitto", users=users, port=args.mqtt_port,
                     tls=make_certs(workdir / "certs"))
    influx = InfluxDB1(workdir / "influxdb", database=args.database, http_port=args.influx_port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        mqtt.start()
        influx.start()
        devices_json, env_sh = write_stack_files(workdir, registry, mqtt, influx)
        ports = "  ".join(f"{name} {port}" for name, port in mqtt.listeners().items())
        print(f"mosquitto  {mqtt.url}  users: {PANTAU_USER}, {ADMIN_USER}, "
              f"{len(registry.devices)} devices  log: {mqtt.log_path}\n"
              f"           listeners: {ports}  (TLS: {mqtt.tls.directory if mqtt.tls else '-'})\n"
              f"influxdb   {influx.url}  database: {influx.database}  log: {influx.log_path}\n"
              f"credentials: source {env_sh}   (device passwords: {devices_json})\n"
              "Ctrl-C stops both.", flush=True)
        while not stop.wait(1.0):
            for svc in (mqtt, influx):
                if not svc.running:
                    raise PantauError(f"{svc.name} exited; log {svc.log_path}")
    finally:
        influx.stop()
        mqtt.stop()
        print("devstack: stopped", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "ensure":
            installed = ensure_packages(*args.packages)
            print(f"devstack: installed {', '.join(installed)}" if installed
                  else "devstack: all packages present")
        elif args.command == "certs":
            ensure_packages("openssl")
            files = make_certs(args.out, hosts=args.hosts or DEFAULT_HOSTS)
            keys = ", ".join(str(k) for k in files.private_keys())
            print(f"devstack: CA {files.ca} (give it to the devices), server certificate "
                  f"{files.server_cert}, keys (0600): {keys}")
        else:
            up(args)
    except PantauError as e:
        print(f"devstack: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
