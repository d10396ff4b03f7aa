"""What the writer needs besides the readings: the sealed batch's messages (for acks and dead
letters), the dead-letter records of what was rejected, and a rate-limited log for both."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.reasons import DESCRIPTIONS, Reason
from devices import topics
from devices.series import SeriesTable
from ingest.deadletter import DeadLetterRecord, Rejected
from ingest.decode import Note

log = logging.getLogger("pantau.pipeline")


@dataclass(slots=True)
class Sealed:
    """A batch plus what is needed to dead-letter and acknowledge its messages."""

    batch: TelemetryBatch
    acks: list[tuple[int, int]]
    topics: list[str]
    payloads: list[bytes]
    received_ns: list[int]
    rejected_messages: dict[int, Note]
    notes: dict[int, list[Note]]


class RateLimitedLog:
    """Logs at most once per key per ``period_s``, saying how many were suppressed."""

    def __init__(self, period_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._period = period_s
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._log(logging.WARNING, key, msg, args, exc_info=False)

    def exception(self, key: str, msg: str, *args: object) -> None:
        """An error with the traceback of the exception being handled (once per period)."""
        self._log(logging.ERROR, key, msg, args, exc_info=True)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...], *,
             exc_info: bool) -> None:
        now = self._clock()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self._period:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        extra = f" ({suppressed} more from {key} suppressed)" if suppressed else ""
        log.log(level, msg + extra, *args, exc_info=exc_info)


def dead_letters(sealed: Sealed, batch: TelemetryBatch, table: SeriesTable,
                 metrics: Metrics, rlog: RateLimitedLog) -> list[DeadLetterRecord]:
    """Dead-letter records for whole rejected messages and for rejected readings (rare:
    this loops only over rejected rows)."""
    per_msg: dict[int, list[Rejected]] = {}
    for origin, notes in sealed.notes.items():
        per_msg.setdefault(origin, []).extend(
            Rejected(n.metric, n.reason, n.detail) for n in notes)
    bad = np.flatnonzero((batch.status != Reason.OK) & (batch.status != Reason.DUPLICATE)
                         & (batch.origin >= 0))
    for i in bad.tolist():
        reason = Reason(int(batch.status[i]))
        metric = table.metric[int(batch.series[i])]
        per_msg.setdefault(int(batch.origin[i]), []).append(Rejected(
            metric, reason, f"{metric}={batch.value[i]!r}: {DESCRIPTIONS[reason]}"))
    records: list[DeadLetterRecord] = []
    for origin, note in sealed.rejected_messages.items():
        metrics.counter("pantau_messages_rejected_total", reason=note.reason.slug).inc()
        records.append(_record(rlog, sealed, origin, note.reason, note.detail, []))
    for origin, rejected in per_msg.items():
        for r in rejected:
            metrics.counter("pantau_readings_rejected_total", reason=r.reason.slug).inc()
        records.append(_record(rlog, sealed, origin, rejected[0].reason,
                                    "; ".join(r.detail for r in rejected), rejected))
    return records

def _record(rlog: RateLimitedLog, sealed: Sealed, origin: int, reason: Reason, detail: str,
            readings: list[Rejected]) -> DeadLetterRecord:
    topic = sealed.topics[origin]
    rlog.warning(topics.device_of(topic) or topic,
                       "rejected %s from %s: %s", reason.slug, topic, detail)
    return DeadLetterRecord(topic, sealed.payloads[origin], sealed.received_ns[origin],
                            reason, detail, readings)
