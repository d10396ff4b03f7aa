"""The dead-letter file: where every rejected message (or reading) can be found again.

Each record (`ingest.deadletter_record`) is one JSON line appended to a local file (written,
fsync'd, before the message is acknowledged: this is the durable copy) and then republished
at QoS 1 to ``<deadletter_topic>/<reason>`` for live consumers.

Bounded in bytes: one line never exceeds the rotation size ``max_bytes`` (an oversized
payload keeps a prefix, its length and its SHA-256); past ``max_bytes`` the file rotates to
``<name>.1``, ``.1`` to ``.2`` ... up to ``generations`` files, so a flooding device pushes out
only the oldest evidence. The MQTT copy is at most ``max_publish_bytes`` (summarised the same
way when the line is longer), below the broker's message size limit.

Faults of the machine (disk full, read-only directory): `write` raises `OSError`, leaves no
torn line behind (what it began is truncated away), publishes nothing, counts the failure and
keeps the reason in `last_error` for readiness until a write succeeds; the caller retries and
acknowledges nothing meanwhile. A torn tail left by a crash mid-write is cut on the first
write after start (its message was not acknowledged, so the broker redelivers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from core.metrics import Metrics
from ingest.deadletter_record import MIN_LIMIT, DeadLetterRecord, Rejected, encode

__all__ = ["DeadLetter", "DeadLetterRecord", "Rejected"]

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_deadletter_write_errors_total": ("counter", "Failed writes of the dead-letter file "
                                             "(disk full, read-only): retried, nothing "
                                             "acknowledged meanwhile."),
}


class DeadLetter:
    """Appends records durably, then publishes them. ``write`` is never called concurrently;
    it raises `OSError` when the file cannot be written (the caller retries)."""

    def __init__(self, path: Path, publish: Callable[[str, bytes], None], topic: str,
                 max_bytes: int = 100 * 1024 * 1024, *, generations: int = 5,
                 keep_payload: int = 65536, max_publish_bytes: int = 65536,
                 metrics: Metrics | None = None) -> None:
        if min(max_bytes, max_publish_bytes) < MIN_LIMIT or generations < 1:
            raise ValueError(f"dead letters need max_bytes and max_publish_bytes >= "
                             f"{MIN_LIMIT} and generations >= 1")
        self.path = path
        self._publish = publish
        self._topic = topic.rstrip("/")
        self._max_bytes, self._generations = max_bytes, generations
        self._keep, self._max_publish = keep_payload, max_publish_bytes
        self._m = metrics
        if metrics is not None:
            metrics.describe(HELP)
        self._tail_checked = False
        self.last_error = ""  # why the last write failed; "" once one succeeded

    def generation(self, i: int) -> Path:
        """The path of rotated generation ``i`` (1 = the newest rotated file)."""
        return self.path.with_name(f"{self.path.name}.{i}")

    async def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        lines = [encode(r, keep_payload=self._keep, limit=self._max_bytes - 1) for r in records]
        try:
            await asyncio.to_thread(self._append, lines)
        except OSError as e:
            self.last_error = f"cannot write the dead-letter file: {e.strerror or e}"
            if self._m is not None:
                self._m.counter("pantau_deadletter_write_errors_total").inc()
            raise
        self.last_error = ""
        for r, line in zip(records, lines, strict=True):
            if len(line) > self._max_publish:
                line = encode(r, keep_payload=0, limit=self._max_publish)
            self._publish(f"{self._topic}/{r.reason.slug}", line)

    # -- the file (in a worker thread) -------------------------------------------------------
    def _append(self, lines: list[bytes]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._tail_checked:
            _cut_torn_tail(self.path)
            self._tail_checked = True
        i = 0
        while i < len(lines):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            chunk, room = [], self._max_bytes - size
            while i < len(lines) and len(lines[i]) + 1 <= room:
                chunk.append(lines[i] + b"\n")
                room -= len(lines[i]) + 1
                i += 1
            if chunk:
                self._write_all(b"".join(chunk), new=size == 0)
            else:  # the next line does not fit: rotate (every line fits an empty file)
                self._rotate()

    def _write_all(self, data: bytes, *, new: bool) -> None:
        """Append ``data`` and fsync it, or leave the file as it was and raise `OSError`."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            start = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # no torn line: drop what this call began
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.path.parent)  # the new file's name survives a power cut too

    def _rotate(self) -> None:
        for i in range(self._generations - 1, 0, -1):
            older = self.generation(i)
            if older.exists():
                os.replace(older, self.generation(i + 1))
        os.replace(self.path, self.generation(1))
        _fsync_dir(self.path.parent)


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file that does not end with a newline after its last complete line."""
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(pos, 65536)
            fh.seek(pos - step)
            block = fh.read(step)
            if pos == end and block.endswith(b"\n"):
                return
            nl = block.rfind(b"\n")
            if nl >= 0:
                fh.truncate(pos - step + nl + 1)
                return
            pos -= step
        if end:
            fh.truncate(0)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
