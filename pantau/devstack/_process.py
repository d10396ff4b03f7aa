"""Running one daemon as a child process: start, wait until it answers, stop, kill, restart.

A `Daemon` owns a work directory and a log file inside it. `start()` returns only once the
daemon answers (`_ready()`); if the process exits first, it raises `DevstackError` with the
tail of its log. `start()` after `stop()` or `kill()` restarts it on the same ports and data.
Not thread-safe: one owner drives the lifecycle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from core.errors import PantauError


class DevstackError(PantauError):
    """A local service could not be installed, configured or started; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listened on a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and prove a file can be written there (daemons fail silently)."""
    path.mkdir(parents=True, exist_ok=True)
    probe = path / ".pantau-write-probe"
    try:
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise DevstackError(f"{path}: directory is not writable: {e.strerror}") from e
    return path


class Daemon:
    """Base of the services: subclasses write their config in `_prepare()` and say when the
    daemon is ready in `_ready()`; `name` and `host` are for messages and URLs."""

    name = "daemon"
    host = "127.0.0.1"
    start_timeout_s = 30.0

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- for subclasses -------------------------------------------------------------------
    def _prepare(self) -> list[str]:
        """Write the config files; return the command line. Called by every `start()`."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the daemon answers requests (polled until `start_timeout_s`)."""
        raise NotImplementedError

    def _after_start(self) -> None:
        """One-time setup once the daemon answers (users, databases); default none."""

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the daemon and return once it answers; raise `DevstackError` if it does not."""
        if self.running:
            return
        argv = self._prepare()
        with open(self.log_path, "ab") as log:  # the daemon's own stdout/stderr, appended
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready():
            code = self._proc.poll()
            if code is not None:
                raise DevstackError(f"{self.name} exited with status {code} while starting "
                                    f"({' '.join(argv)}); log {self.log_path}:\n"
                                    f"{tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.kill()
                raise DevstackError(f"{self.name} did not answer within {self.start_timeout_s}s;"
                                    f" log {self.log_path}:\n{tail(self.log_path)}")
            time.sleep(0.05)
        try:
            self._after_start()
        except BaseException:
            self.kill()  # never leave a half-set-up daemon behind
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL after ``timeout``). Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would; `start()` brings it back on the same ports and data."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        """`stop()` then `start()`."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
