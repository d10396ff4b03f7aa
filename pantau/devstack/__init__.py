"""The local service stack: Debian's Mosquitto, InfluxDB 1.x and VictoriaMetrics as child
processes on free loopback ports, for tests and for running Pantau on one machine.

`ensure_packages()` installs what is missing; each service is started with `start()` (which
returns once it answers), stopped with `stop()` (SIGTERM), crashed with `kill()` (SIGKILL) and
brought back on the same ports and data by `start()`. ``python -m pantau.devstack up --dir D``
runs a whole stack in the foreground and writes ``D/env.sh`` for Pantau.
"""

from devices.credentials import PANTAU_USER, new_password
from pantau.devstack._process import DevstackError, free_port
from pantau.devstack.influx import InfluxDB1, InfluxError, InfluxUser
from pantau.devstack.mosquitto import (
    ADMIN_USER,
    Mosquitto,
    default_acl,
    stack_users,
)
from pantau.devstack.packages import ALL_PACKAGES, ensure_packages, missing_packages
from pantau.devstack.victoria import VictoriaMetrics

__all__ = [
    "ADMIN_USER",
    "ALL_PACKAGES",
    "PANTAU_USER",
    "DevstackError",
    "InfluxDB1",
    "InfluxError",
    "InfluxUser",
    "Mosquitto",
    "VictoriaMetrics",
    "default_acl",
    "ensure_packages",
    "free_port",
    "missing_packages",
    "new_password",
    "stack_users",
]
