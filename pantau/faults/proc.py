"""Pantau under test: ``pantau run`` as a child process (optionally inside a network namespace)
and a sampler that watches it from outside, as an operator's monitoring would.

`PantauProc.stop` sends SIGTERM and times the exit; `kill9` crashes it. `Sampler` records, every
half second, the process's RSS, peak RSS (``VmHWM``), open file descriptors and CPU time from
``/proc``, and a few gauges from ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from core.errors import PantauError
from core.metrics import parse_text


class FaultError(PantauError):
    """The fault rig could not set up or drive a scenario (not a finding about Pantau)."""


def proc_stats(pid: int) -> tuple[float, float, int, float]:
    """(RSS MB, peak RSS MB, open fds, CPU s) of a live process."""
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return rss, hwm, fds, cpu


class PantauProc:
    """One ``pantau run`` child; ``url`` is its HTTP API. Start again after a stop or a kill
    (same settings, same state dir: a restart)."""

    def __init__(self, env: dict[str, str], log: Path, netns: str | None = None) -> None:
        self.env = {**os.environ, **env}
        self.url = f"http://{env['PANTAU_HTTP_LISTEN']}"
        self.log, self.netns = log, netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_mb = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        argv = [sys.executable, "-m", "pantau.cli", "run"]
        if self.netns:  # `ip netns exec` execs the command: the pid stays Pantau's
            argv = ["ip", "netns", "exec", self.netns, *argv]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)

    async def ready(self, within: float = 60.0) -> None:
        """Until ``/readyz`` answers 200 (broker connected, database answering)."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise FaultError(f"pantau run exited; log {self.log}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(f"{self.url}/readyz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise FaultError(f"pantau not ready within {within:.0f} s; log {self.log}:\n{self.tail()}")

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s, \
                s.get(f"{self.url}/metrics") as r:
            return parse_text(await r.text())

    def _note_peak(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(OSError):
                self.peak_rss_mb = max(self.peak_rss_mb, proc_stats(self.pid)[1])

    async def stop(self, sig: int = signal.SIGTERM, within: float = 120.0) -> tuple[float, int]:
        """Send ``sig`` and wait for the exit: (seconds it took, exit status)."""
        assert self.proc is not None
        self._note_peak()
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = await asyncio.to_thread(self.proc.wait)
        return time.monotonic() - t0, code

    async def kill9(self) -> None:
        await self.stop(signal.SIGKILL)

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # wall clock
    pid: int
    rss_mb: float
    fds: int
    cpu_s: float
    unacked: float  # NaN when /metrics did not answer
    connected: float
    paused: float


class Sampler:
    """Samples a `PantauProc` every ``every`` seconds while ``run`` runs (cancel to stop)."""

    def __init__(self, pantau: PantauProc, every: float = 0.5) -> None:
        self.pantau, self.every = pantau, every
        self.samples: list[Sample] = []

    async def run(self) -> None:
        while True:
            pid = self.pantau.pid
            if pid is not None:
                with contextlib.suppress(OSError):
                    rss, hwm, fds, cpu = proc_stats(pid)
                    self.pantau.peak_rss_mb = max(self.pantau.peak_rss_mb, hwm)
                    m: dict[str, float] = {}
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                        m = await self.pantau.metrics()
                    self.samples.append(Sample(time.time(), pid, rss, fds, cpu,
                                               m.get("pantau_messages_unacked", float("nan")),
                                               m.get("pantau_mqtt_connected", float("nan")),
                                               m.get("pantau_reading_paused", float("nan"))))
            await asyncio.sleep(self.every)

    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]

    def peak_unacked(self) -> float:
        return max((s.unacked for s in self.samples if s.unacked == s.unacked), default=0.0)
