"""Every file the local stack writes with a secret in it is created with mode 0600 by the call
that creates it (never created wider and narrowed afterwards), whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from devices.registry import default_registry_path, load_registry
from pantau.devstack import InfluxDB1, Mosquitto, stack_users
from pantau.devstack.__main__ import write_stack_files
from pantau.devstack.certs import make_certs

SECRETS = {"devices.json", "env.sh", "influxdb/credentials.json", "mosquitto/passwd",
           "mosquitto/acl", "certs/ca.key", "certs/server.key", "certs/client.key"}


def test_every_credential_file_is_born_0600(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on os.open (the real call goes through) while the stack's files are written as
    ``python -m pantau.devstack up`` writes them, without starting the daemons."""
    created: dict[str, int] = {}
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *a: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            created[str(path)] = mode
        return real_open(path, flags, mode, *a, **kw)

    registry = load_registry(default_registry_path())
    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)  # the mode must not rely on a umask
    try:
        mqtt = Mosquitto(tmp_path / "mosquitto", users=stack_users(d.id for d in registry.devices),
                         tls=make_certs(tmp_path / "certs"))
        mqtt._prepare()  # the config files, as start() writes them
        influx = InfluxDB1(tmp_path / "influxdb")
        write_stack_files(tmp_path, registry, mqtt, influx)
    finally:
        os.umask(old)
    for name in SECRETS:
        path = tmp_path / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        # written under a temporary name in the same directory and renamed into place
        births = [m for p, m in created.items() if Path(p).parent == path.parent
                  and Path(p).name.startswith(f".{path.name}.")]
        assert births and all(mode == 0o600 for mode in births), (name, births)
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left"
