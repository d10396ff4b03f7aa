"""Installing the Debian packages the local stack runs: a fresh machine needs nothing else.

`ensure_packages()` checks each package's binaries with `shutil.which` and installs only the
missing packages with ``apt-get install -y`` (running ``apt-get update`` first when the install
fails for lack of package lists). It needs root or passwordless sudo; otherwise it raises
`DevstackError` naming the command to run by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from pantau.devstack._process import DevstackError

#: Debian package -> the binaries it must provide (searched on PATH and in /usr/sbin).
BINARIES: dict[str, tuple[str, ...]] = {
    "mosquitto": ("mosquitto", "mosquitto_passwd"),
    "mosquitto-clients": ("mosquitto_pub", "mosquitto_sub"),
    "influxdb": ("influxd",),
    "victoria-metrics": ("victoria-metrics",),
    "prometheus-alertmanager": ("prometheus-alertmanager",),
    "chromium": ("chromium",),
    "openssl": ("openssl",),  # makes the TLS certificates of the local broker (certs.py)
}
#: What ``python -m pantau.devstack ensure`` installs.
ALL_PACKAGES = tuple(BINARIES)
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


def which(binary: str) -> str | None:
    """Full path of ``binary``, looking in the sbin directories too (not on every user's PATH)."""
    return shutil.which(binary, path=_SEARCH_PATH)


def binary(name: str) -> str:
    """Full path of a binary the stack needs; `DevstackError` if it is not installed."""
    path = which(name)
    if path is None:
        pkg = next((p for p, bins in BINARIES.items() if name in bins), name)
        raise DevstackError(f"{name} is not installed: run `python -m pantau.devstack ensure` "
                            f"or `apt-get install -y {pkg}`")
    return path


def missing_packages(*names: str) -> list[str]:
    """The packages among ``names`` (default: all) with a binary not found."""
    unknown = [n for n in names if n not in BINARIES]
    if unknown:
        raise DevstackError(f"unknown package(s) {unknown}; known: {sorted(BINARIES)}")
    return [n for n in names or ALL_PACKAGES if any(which(b) is None for b in BINARIES[n])]


def _apt(args: list[str]) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise DevstackError(f"installing needs root: run `apt-get {' '.join(args)}` as root")
        prefix = [sudo, "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"devstack: {' '.join([*prefix, 'apt-get', *args])}", file=sys.stderr, flush=True)
    return subprocess.run([*prefix, "apt-get", *args], env=env, capture_output=True, text=True,
                          check=False)


def ensure_packages(*names: str) -> list[str]:
    """Install the missing ones among ``names`` (default: all); return what was installed.

    Raises `DevstackError` if apt-get is missing, fails, or the binaries are still absent.
    """
    missing = missing_packages(*names)
    if not missing:
        return []
    if shutil.which("apt-get") is None:
        raise DevstackError(f"missing packages {missing} and no apt-get on this machine: "
                            "install them with the system's package manager")
    print(f"devstack: installing {', '.join(missing)}", file=sys.stderr, flush=True)
    install = ["install", "-y", "--no-install-recommends", *missing]
    done = _apt(install)
    if done.returncode != 0:  # a fresh machine (or container) often has no package lists yet
        update = _apt(["update"])
        if update.returncode != 0:
            raise DevstackError(f"apt-get update failed ({update.returncode}):\n"
                                f"{update.stderr[-2000:]}")
        done = _apt(install)
    if done.returncode != 0:
        raise DevstackError(f"apt-get install {' '.join(missing)} failed ({done.returncode}):\n"
                            f"{done.stderr[-2000:]}")
    still = missing_packages(*missing)
    if still:
        raise DevstackError(f"apt-get installed {missing} but binaries of {still} are still "
                            f"missing from {_SEARCH_PATH}")
    return missing
