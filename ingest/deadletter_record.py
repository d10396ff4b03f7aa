"""The dead-letter record and its JSON line, bounded in bytes whatever the message was.

Record fields: ``received_at`` (RFC 3339), ``topic``, ``device``, ``reason`` (slug of the
message's reason, or of its first rejected reading), ``detail``, ``readings`` (list of
``{"metric", "reason", "detail"}`` for readings rejected one by one; past `MAX_READINGS`
the rest are counted in ``readings_omitted``), and the original payload as ``payload`` (UTF-8
text) or ``payload_b64``.

A payload longer than ``keep_payload`` bytes (``ingest.max_payload_bytes``: the oversized
ones) is not kept whole: ``payload``/``payload_b64`` hold its first `PREFIX_BYTES` bytes,
with ``payload_truncated: true``, ``payload_bytes`` (its length) and ``payload_sha256`` (of
the whole payload). `encode` never returns more than ``limit`` bytes: when a record would
exceed it (a payload of control characters escapes to six times its size), it is summarised
the same way, then with fewer readings and a shorter detail.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.reasons import Reason
from devices import topics

PREFIX_BYTES = 1024
MAX_READINGS = 100
MAX_DETAIL = 2000
MIN_LIMIT = 4096  # the last resort below fits in this whatever the topic and reasons
# (payload bytes kept when summarised, readings listed, detail characters): tried in order.
_SUMMARIES = ((PREFIX_BYTES, MAX_READINGS, MAX_DETAIL), (256, 10, 500), (0, 0, 200))


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

    def to_json(self, *, keep_payload: int = 65536, limit: int = 1 << 20) -> bytes:
        """See `encode`."""
        return encode(self, keep_payload=keep_payload, limit=limit)


def encode(record: DeadLetterRecord, *, keep_payload: int, limit: int) -> bytes:
    """The record as one JSON line (no newline) of at most ``limit`` bytes (>= `MIN_LIMIT`);
    the payload whole when it is at most ``keep_payload`` bytes and the line fits."""
    if limit < MIN_LIMIT:
        raise ValueError(f"a dead-letter record needs at least {MIN_LIMIT} bytes, not {limit}")
    if len(record.payload) <= keep_payload:
        line = _line(record, None, MAX_READINGS, MAX_DETAIL)
        if len(line) <= limit:
            return line
    for prefix, readings, detail in _SUMMARIES:
        line = _line(record, prefix, readings, detail)
        if len(line) <= limit:
            break
    return line


def _line(r: DeadLetterRecord, prefix: int | None, max_readings: int, max_detail: int) -> bytes:
    doc: dict[str, object] = {
        "received_at": datetime.fromtimestamp(r.received_ns / 1e9, UTC).isoformat(),
        "topic": r.topic[:300],
        "device": r.device[:100],
        "reason": r.reason.slug,
        "detail": r.detail[:max_detail],
        "readings": [{"metric": x.metric[:100], "reason": x.reason.slug,
                      "detail": x.detail[:200]} for x in r.readings[:max_readings]],
    }
    if len(r.readings) > max_readings:
        doc["readings_omitted"] = len(r.readings) - max_readings
    kept = r.payload if prefix is None else _prefix(r.payload, prefix)
    try:
        doc["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        doc["payload_b64"] = base64.b64encode(kept).decode("ascii")
    if prefix is not None:
        doc["payload_truncated"] = True
        doc["payload_bytes"] = len(r.payload)
        doc["payload_sha256"] = hashlib.sha256(r.payload).hexdigest()
    try:
        return json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: keep it escaped
        return json.dumps(doc).encode("ascii")


def _prefix(payload: bytes, n: int) -> bytes:
    """The first ``n`` bytes, not cutting a UTF-8 character in two (so text stays text)."""
    cut = payload[:n]
    for back in range(4):
        try:
            (cut[:len(cut) - back] if back else cut).decode("utf-8")
        except UnicodeDecodeError:
            continue
        return cut[:len(cut) - back] if back else cut
    return cut
