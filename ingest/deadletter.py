"""The dead-letter record: where every rejected message (or reading) can be found again.

Each record is one JSON line appended to a local file (flushed and fsync'd before the
message is acknowledged: this is the durable copy) and republished at QoS 1 to
``<deadletter_topic>/<reason>`` for live consumers. The file rotates to ``<name>.1`` past
``max_bytes``.

Record fields: ``received_at`` (RFC 3339), ``topic``, ``device``, ``reason`` (slug of the
message's reason, or of its first rejected reading), ``detail``, ``readings`` (list of
``{"metric", "reason", "detail"}`` for readings rejected one by one), and the original payload
as ``payload`` (UTF-8 text) or ``payload_b64``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.reasons import Reason
from devices import topics


@dataclass(slots=True)
class Rejected:
    """One rejected reading inside an otherwise accepted message."""

    metric: str
    reason: Reason
    detail: str


@dataclass(slots=True)
class DeadLetterRecord:
    topic: str
    payload: bytes
    received_ns: int
    reason: Reason
    detail: str
    readings: list[Rejected] = field(default_factory=list)

    @property
    def device(self) -> str:
        return topics.device_of(self.topic)

    def to_json(self) -> bytes:
        doc: dict[str, object] = {
            "received_at": datetime.fromtimestamp(self.received_ns / 1e9, UTC).isoformat(),
            "topic": self.topic,
            "device": self.device,
            "reason": self.reason.slug,
            "detail": self.detail,
            "readings": [{"metric": r.metric, "reason": r.reason.slug, "detail": r.detail}
                         for r in self.readings],
        }
        try:
            doc["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            doc["payload_b64"] = base64.b64encode(self.payload).decode("ascii")
        try:
            return json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON escape: keep it escaped
            return json.dumps(doc).encode("ascii")


class DeadLetter:
    """Appends records durably, then publishes them. ``write`` is never called concurrently;
    it raises `OSError` when the file cannot be written (the caller retries)."""

    def __init__(self, path: Path, publish: Callable[[str, bytes], None], topic: str,
                 max_bytes: int = 100 * 1024 * 1024) -> None:
        self.path = path
        self._publish = publish
        self._topic = topic.rstrip("/")
        self._max_bytes = max_bytes

    def _append(self, lines: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.stat().st_size + len(lines) > self._max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        with open(self.path, "ab") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())

    async def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        encoded = [r.to_json() for r in records]
        await asyncio.to_thread(self._append, b"".join(e + b"\n" for e in encoded))
        for r, e in zip(records, encoded, strict=True):
            self._publish(f"{self._topic}/{r.reason.slug}", e)
