"""Debian's Mosquitto 2 as a child process, with password auth, an ACL and durable queues.

Every user has a random password (`new_password()`); nothing listens beyond 127.0.0.1. The
config is rewritten on every `start()` from the `users` and `acl` given here, so the data
directory (sessions and queued messages) survives restarts while credentials stay as set.

Listeners, by who connects (`Mosquitto.listeners`):

- ``port``: services (Pantau, an operator, the tests), any client id;
- ``device_port``: devices, with ``use_username_as_clientid``: whatever client id a device
  sends, its session is its username (its device id), so it can neither take over Pantau's
  session nor another device's (tests/devstack/test_client_identity.py);
- with ``tls`` (`pantau.devstack.certs.CertFiles`): ``tls_port``, services over TLS, with a
  client certificate from the same CA required, and ``device_tls_port``, devices over TLS
  (password only), client id bound as on ``device_port``.

Why not one password file per listener (``per_listener_settings true``): Mosquitto then
checks the ACL of a session that is not connected against the listener it came from, and from
2.0.12 on a disconnected session has none, so every message for an offline Pantau is refused
and dropped (mosquitto issues #2618, #2526; Debian's 2.0.11 still queued them when tried, the
compose image's newer 2.0.x is affected): the queue Pantau relies on while it is away would
stay empty. The services listeners are therefore kept from devices by the network (loopback
here; not published in deploy/) and, over TLS, by the client certificate.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devices import topics
from devices.credentials import PANTAU_USER, new_password, password_line
from devices.provision import write_atomic
from pantau.devstack._process import Daemon, DevstackError, free_port, port_open, writable_dir
from pantau.devstack.certs import CertFiles
from pantau.devstack.packages import binary

#: The all-topics identity of the test-suite and of an operator debugging the stack.
ADMIN_USER = "pantau-test-admin"

#: Measured with Debian's mosquitto 2.0.11 and paho-mqtt 2.2 (tests/devstack/test_mosquitto.py,
#: `test_receive_maximum_*`): a v5 client that sends Receive Maximum N gets exactly N unacked
#: QoS 1 messages at first, whatever `max_inflight_messages` says (10, 50 and 200 against 20,
#: 100 and 0); without it (or over v3.1.1) it gets `max_inflight_messages` (0 = no cap). But
#: the window does not slide by one: a PUBACK for the *oldest* unacked message makes the broker
#: send up to N more (acking in arrival order took N=10 to 20, 30, 40...), while acking the
#: newest releases one. So Receive Maximum bounds only the first window; a subscriber that
#: acks in order must enforce its own cap on unacked messages. This value is the window for
#: clients without Receive Maximum: above Pantau's write batch, equal to `mqtt.max_unacked`.
DEFAULT_MAX_INFLIGHT = 20000
#: Sized for a long Pantau outage: 1,000,000 messages is ~4 hours of a 2,000-device city at
#: one message per device every 30 s (~8 hours at 1,000 devices); raise it per deployment.
#: When a session's queue is full, Mosquitto drops the newest message while still PUBACKing
#: the publisher (DESIGN.md, "Known traps").
DEFAULT_MAX_QUEUED = 1_000_000
#: Bounded by bytes too: 1,000,000 queued messages of ~200 bytes are ~200 MB; 512 MiB keeps
#: a queue of large payloads from taking the broker's memory (the newest is dropped past it).
DEFAULT_MAX_QUEUED_BYTES = 512 * 1024 * 1024
#: Payloads Pantau decodes are at most `ingest.max_payload_bytes` (64 KiB by default). Larger
#: ones up to this limit still reach Pantau and are dead-lettered as `payload_too_large` (a
#: prefix, the length and a SHA-256), so the operator sees who sends them; beyond it the
#: broker refuses the PUBLISH (an MQTT v5 publisher gets PUBACK 0x83).
DEFAULT_MESSAGE_SIZE_LIMIT = 96 * 1024
#: Any packet larger than this disconnects its sender before the broker buffers it. Pantau
#: announces twice `ingest.max_payload_bytes` as its MQTT v5 Maximum Packet Size: keep this
#: at or below that, or the broker drops messages too large for Pantau without a trace.
DEFAULT_MAX_PACKET_SIZE = 128 * 1024


def stack_users(device_ids: Iterable[str]) -> dict[str, str]:
    """Users of a Pantau stack with fresh random passwords: `PANTAU_USER`, `ADMIN_USER` and one
    user per device (username = device id)."""
    users = {PANTAU_USER: new_password(), ADMIN_USER: new_password()}
    for device_id in device_ids:
        if device_id in users:
            raise DevstackError(f"device id {device_id!r} collides with a service user")
        users[device_id] = new_password()
    return users


def default_acl(*, pantau_user: str = PANTAU_USER, admin_user: str = ADMIN_USER,
                prefix: str = "pantau") -> str:
    """The ACL Pantau ships: ingest reads everything under ``prefix`` and writes dead letters;
    a device (username = device id) writes only its own telemetry and status, at any site;
    the admin/test identity reads and writes every topic, `$SYS` included."""
    return "\n".join([
        f"user {pantau_user}",
        f"topic read {prefix}/#",
        f"topic write {prefix}/deadletter/#",
        "",
        f"user {admin_user}",
        "topic readwrite #",
        "topic read $SYS/#",
        "",
        "# Patterns apply to every user; %u is the username, i.e. the device id.",
        *topics.acl_patterns(prefix),
        "",
    ])


class Mosquitto(Daemon):
    """A Mosquitto broker on ``127.0.0.1:port`` (a free port by default) in ``workdir``.

    ``users`` maps username -> password; ``acl`` is an `acl_file` text (default
    `default_acl()`). Persistence is a snapshot every ``autosave_interval`` seconds: a kill -9
    loses at most that much of queued messages and sessions; a smaller interval costs a full
    rewrite of the in-memory store each time, which grows with the queued backlog.
    """

    name = "mosquitto"

    def __init__(self, workdir: str | Path, *, users: Mapping[str, str], acl: str | None = None,
                 port: int | None = None, max_queued_messages: int = DEFAULT_MAX_QUEUED,
                 max_inflight_messages: int = DEFAULT_MAX_INFLIGHT,
                 autosave_interval: int = 1,
                 max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
                 message_size_limit: int = DEFAULT_MESSAGE_SIZE_LIMIT,
                 max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
                 tls: CertFiles | None = None) -> None:
        super().__init__(workdir)
        self.users = dict(users)
        self.acl = default_acl() if acl is None else acl
        self.port = port or free_port()
        self.device_port = free_port()
        self.tls = tls
        self.tls_port, self.device_tls_port = (free_port(), free_port()) if tls else (0, 0)
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.autosave_interval = autosave_interval
        self.max_queued_bytes = max_queued_bytes
        self.message_size_limit, self.max_packet_size = message_size_limit, max_packet_size
        self.conf_path = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port`` (no credentials): the services listener."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def device_url(self) -> str:
        """``mqtt://127.0.0.1:device_port``: the devices listener (client id = username)."""
        return f"mqtt://{self.host}:{self.device_port}"

    def url_for(self, username: str, *, port: int = 0, scheme: str = "mqtt") -> str:
        """``mqtt://user:password@127.0.0.1:port`` for one of `users` (default: `port`)."""
        user, password = self.credentials(username)
        return (f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:"
                f"{port or self.port}")

    def listeners(self) -> dict[str, int]:
        """Port of each listener: ``services``, ``devices`` and, with `tls`, ``services-tls``
        and ``devices-tls``."""
        ports = {"services": self.port, "devices": self.device_port}
        if self.tls:
            ports |= {"services-tls": self.tls_port, "devices-tls": self.device_tls_port}
        return ports

    def credentials(self, username: str) -> tuple[str, str]:
        """(username, password); `DevstackError` for an unknown user."""
        try:
            return username, self.users[username]
        except KeyError:
            raise DevstackError(f"no MQTT user {username!r} on this broker") from None

    @property
    def admin(self) -> tuple[str, str]:
        """The all-topics test/admin identity's (username, password)."""
        return self.credentials(ADMIN_USER)

    def wait_accepts(self, username: str, password: str, *, within: float = 30.0) -> None:
        """Return once the broker accepts ``username`` with ``password`` on the services
        listener: after a SIGHUP (`devices.provision.reload_broker`) Mosquitto re-reads its
        password file only in its next loop iteration. `DevstackError` if it still refuses
        after ``within`` seconds."""
        deadline = time.monotonic() + within
        while (refused := _refusal(self.host, self.port, username, password)) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        if refused:
            raise DevstackError(f"Mosquitto on {self.host}:{self.port} still refuses "
                                f"{username!r} after {within:.0f} s: {refused}")

    def _listener_lines(self) -> list[str]:
        # `use_username_as_clientid` belongs to the listener above it, whatever
        # per_listener_settings says; the TLS options too.
        lines = [f"listener {self.port} {self.host}",
                 f"listener {self.device_port} {self.host}", "use_username_as_clientid true"]
        if self.tls:
            files = [f"cafile {self.tls.ca}", f"certfile {self.tls.server_cert}",
                     f"keyfile {self.tls.server_key}"]
            lines += [f"listener {self.tls_port} {self.host}", *files,
                      "require_certificate true",
                      f"listener {self.device_tls_port} {self.host}", *files,
                      "use_username_as_clientid true"]
        return lines

    def _prepare(self) -> list[str]:
        writable_dir(self.data_dir)
        passwd = self.workdir / "passwd"
        write_atomic(passwd, "".join(password_line(u, p) + "\n" for u, p in self.users.items()))
        acl = self.workdir / "acl"
        write_atomic(acl, self.acl)
        self.conf_path.write_text("\n".join([
            "per_listener_settings false",  # see the module docstring
            *self._listener_lines(),
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {acl}",
            # Run as whoever started us (as root, `user root` keeps root): the default drops
            # to `mosquitto`, which cannot write a data directory we created, silently.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            f"autosave_interval {self.autosave_interval}",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_queued_bytes {self.max_queued_bytes}",
            f"message_size_limit {self.message_size_limit}",  # 0: no limit
            *([f"max_packet_size {self.max_packet_size}"] if self.max_packet_size else []),
            f"max_inflight_messages {self.max_inflight_messages}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            "set_tcp_nodelay true",
            "",
        ]))
        return [binary("mosquitto"), "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return all(port_open(self.host, port) for port in self.listeners().values())


def _refusal(host: str, port: int, username: str, password: str) -> str:
    """Why the broker refuses an MQTT v5 connection as ``username`` ("" when it accepts)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answer = ["no CONNACK within 5 s"]
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
        answer[0] = str(reason) if reason.is_failure else ""
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    try:
        client.connect(host, port)
        client.loop_start()
        done.wait(5.0)
    except OSError as e:
        answer[0] = str(e) or type(e).__name__
    finally:
        client.disconnect()
        client.loop_stop()
    return answer[0]
