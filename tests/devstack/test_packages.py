"""Package checks and ports: no install happens here when the binaries are present."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from pantau.devstack import ALL_PACKAGES, DevstackError, ensure_packages, free_port, packages
from pantau.devstack.packages import binary, missing_packages


def test_all_packages_present_after_ensure() -> None:
    ensure_packages()  # installs what is missing (the fixtures rely on the same call)
    assert missing_packages() == []
    assert binary("mosquitto").endswith("/mosquitto")
    assert set(ALL_PACKAGES) == {"mosquitto", "mosquitto-clients", "influxdb",
                                 "victoria-metrics", "prometheus-alertmanager", "chromium",
                                 "openssl"}


def test_unknown_package_is_an_error() -> None:
    with pytest.raises(DevstackError, match="unknown package"):
        ensure_packages("mosquito")


def test_missing_binary_names_the_package() -> None:
    with pytest.raises(DevstackError, match="not installed"):
        binary("no-such-daemon-here")


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def _pretend_missing(monkeypatch: pytest.MonkeyPatch, *binaries: str) -> None:
    real = packages.which
    monkeypatch.setattr(packages, "which", lambda b: None if b in binaries else real(b))


def test_missing_apt_get_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_missing(monkeypatch, "influxd")
    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda b, **kw: None if b == "apt-get" else real(b, **kw))
    with pytest.raises(DevstackError, match=r"missing packages \['influxdb'\] and no apt-get"):
        ensure_packages("influxdb", "mosquitto")


def test_failed_install_updates_lists_then_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_missing(monkeypatch, "victoria-metrics")
    calls: list[list[str]] = []

    def fake_apt(args: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        code = 0 if args == ["update"] else 100
        return subprocess.CompletedProcess(args, code, "", "E: Unable to locate package")

    monkeypatch.setattr(packages, "_apt", fake_apt)
    with pytest.raises(DevstackError, match="Unable to locate package"):
        ensure_packages("victoria-metrics")
    install = ["install", "-y", "--no-install-recommends", "victoria-metrics"]
    assert calls == [install, ["update"], install]
