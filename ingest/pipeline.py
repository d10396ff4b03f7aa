"""The pipeline: messages in, batches sealed, processed, written, dead-lettered, acknowledged.

    on_message (event loop, sync) -> RowBuffer -> seal (size or age) -> bounded deque
        -> writer: processors -> sink (retry, split refused batches) -> dead letters -> acks

Guarantees:
- A message is acknowledged only after every reading it carried was written (2xx) or
  dead-lettered (fsync'd), never before; a crash before that means the broker redelivers.
- Memory is bounded: at most ``pending_batches`` sealed batches wait and at most
  ``max_unacked`` messages are unacknowledged; past either the source is paused and the
  rest waits in the broker.
- Conservation: readings received = written + rejected + duplicate + in flight, each a
  counter in `Metrics`; whole rejected messages are counted by reason.
- Retryable write errors are retried forever with jittered exponential backoff (honouring
  Retry-After); a refused batch (4xx) is split until the refused readings are isolated and
  dead-lettered as ``refused_by_database``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ingest.batch import TelemetryBatch
from ingest.deadletter import DeadLetter, DeadLetterRecord, Rejected
from ingest.decode import Decoder, Note, RowBuffer
from ingest.errors import SinkError
from ingest.reasons import DESCRIPTIONS, Reason
from pantau.metrics import DELAY_BUCKETS, SIZE_BUCKETS, Metrics
from processors import Processor

log = logging.getLogger("pantau.pipeline")


class Sink(Protocol):
    """Used as ``async with``; `write` is never called concurrently and makes one attempt,
    raising `SinkError` (``retryable`` says whether to try the same batch again)."""

    async def write(self, batch: TelemetryBatch) -> None: ...


class Broker(Protocol):
    def ack(self, mid: int, generation: int) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


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


@dataclass(slots=True)
class _Open:
    rows: RowBuffer = field(default_factory=RowBuffer)
    acks: list[tuple[int, int]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    received_ns: list[int] = field(default_factory=list)
    rejected_messages: dict[int, Note] = field(default_factory=dict)


class RateLimitedLog:
    """Logs at most once per key per ``period_s``, saying how many were suppressed."""

    def __init__(self, period_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._period = period_s
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = self._clock()
        last, suppressed = self._last.get(key, (-1e18, 0))
        if now - last < self._period:
            self._last[key] = (last, suppressed + 1)
            return
        self._last[key] = (now, 0)
        extra = f" ({suppressed} more from {key} suppressed)" if suppressed else ""
        log.warning(msg + extra, *args)


class Pipeline:
    """Owns batching and the single writer. `on_message` runs on the event loop thread."""

    def __init__(self, *, decoder: Decoder, chain: Processor, sink: Sink,
                 deadletter: DeadLetter, metrics: Metrics, broker: Broker,
                 batch_size: int = 5000, flush_interval_s: float = 0.25,
                 pending_batches: int = 4, max_unacked: int = 20000,
                 retry_min_s: float = 0.2, retry_max_s: float = 15.0,
                 clock: Callable[[], int] = time.time_ns,
                 on_status: Callable[[str, bytes], None] | None = None,
                 on_stored: Callable[[TelemetryBatch, list[int]], None] | None = None) -> None:
        """``on_stored(batch, received_ns)``: after a batch was written and dead-lettered,
        before its acks; ``received_ns[batch.origin]`` is each row's receive time."""
        self._decoder, self._chain, self._sink, self._dl = decoder, chain, sink, deadletter
        self._m, self._broker, self._clock = metrics, broker, clock
        self._batch_size, self._flush_s, self._max_pending = batch_size, flush_interval_s, \
            pending_batches
        self._retry_min, self._retry_max = retry_min_s, retry_max_s
        self._max_unacked = max_unacked
        self._on_status, self._on_stored = on_status, on_stored
        self._open = _Open()
        self._timer: asyncio.TimerHandle | None = None
        self._queue: deque[Sealed] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused = False
        self.sink_ok = True
        self.last_sink_error = ""
        self._rlog = RateLimitedLog()
        m = metrics
        self._c_msgs = m.counter("pantau_messages_received_total")
        self._c_acked = m.counter("pantau_messages_acked_total")
        self._c_readings = m.counter("pantau_readings_received_total")
        self._c_written = m.counter("pantau_readings_written_total")
        self._c_dup = m.counter("pantau_readings_duplicate_total")
        self._g_unacked = m.gauge("pantau_messages_unacked")
        self._g_inflight = m.gauge("pantau_readings_in_flight")
        self._g_queue = m.gauge("pantau_queue_batches")
        self._g_paused = m.gauge("pantau_reading_paused")
        self._h_batch = m.histogram("pantau_batch_readings", SIZE_BUCKETS)
        self._h_write = m.histogram("pantau_write_seconds")
        self._h_delay = m.histogram("pantau_ingest_delay_seconds", DELAY_BUCKETS)

    # -- intake (sync, on the event loop) -------------------------------------------------
    def on_message(self, topic: str, payload: bytes, mid: int, generation: int) -> None:
        op = self._open
        origin = len(op.acks)
        now = self._clock()
        op.acks.append((mid, generation))
        op.topics.append(topic)
        op.payloads.append(payload)
        op.received_ns.append(now)
        self._c_msgs.value += 1
        self._g_unacked.value += 1
        rows = op.rows.ts_ns  # the row count is len() of any column
        if topic.endswith("/status"):
            self._status(topic, payload)
        else:
            before = len(rows)
            note = self._decoder.decode(topic, payload, now, op.rows, origin)
            if note is not None:
                op.rejected_messages[origin] = note
            added = len(rows) - before
            notes = op.rows.notes.get(origin) if op.rows.notes else None
            self._c_readings.value += added + (len(notes) if notes else 0)
            self._g_inflight.value += added
        if self._g_unacked.value >= self._max_unacked:
            self._seal()
            self._update_pause()
        elif len(rows) >= self._batch_size:
            self._seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._seal)

    def _status(self, topic: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip().lower()
        state = "online" if "online" in text else "offline" if "offline" in text else "unknown"
        self._m.counter("pantau_status_messages_total", status=state).inc()
        if self._on_status is not None:
            self._on_status(topic, payload)

    def _seal(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        op = self._open
        if not op.acks:
            return
        self._open = _Open()
        r = op.rows
        batch = TelemetryBatch.from_arrays(np.array(r.ts_ns, dtype=np.int64),
                                           np.array(r.series, dtype=np.int32),
                                           np.array(r.value, dtype=np.float64),
                                           origin=np.array(r.origin, dtype=np.int32))
        self._queue.append(Sealed(batch, op.acks, op.topics, op.payloads, op.received_ns,
                                  op.rejected_messages, r.notes))
        self._idle.clear()
        self._g_queue.set(len(self._queue))
        self._wakeup.set()
        self._update_pause()

    def _update_pause(self) -> None:
        """Back-pressure: stop reading while too many batches wait or too many messages are
        unacknowledged (Mosquitto 2.0 does not hold its Receive Maximum window once acks
        flow, so Pantau enforces its own cap)."""
        full = (len(self._queue) >= self._max_pending
                or self._g_unacked.value >= self._max_unacked)
        if full != self._paused:
            self._paused = full
            self._g_paused.set(1 if full else 0)
            if full:
                self._broker.pause()
            else:
                self._broker.resume()

    # -- the writer -----------------------------------------------------------------------
    async def run(self) -> None:
        """The single writer; runs until cancelled. Cancel only after `drain` for a clean stop."""
        while True:
            while not self._queue:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._handle(self._queue[0])
            self._queue.popleft()
            self._g_queue.set(len(self._queue))
            self._update_pause()

    async def drain(self) -> None:
        """Seal the open batch and wait until everything sealed is written and acknowledged."""
        self._seal()
        await self._idle.wait()

    async def _handle(self, sealed: Sealed) -> None:
        batch = self._chain.process(sealed.batch)
        stored = batch.ok
        refused = await self._write(batch.take(stored))
        if refused.any():
            idx = np.flatnonzero(stored)[refused]
            status = batch.status.copy()
            status[idx] = Reason.REFUSED_BY_DATABASE
            batch = TelemetryBatch(batch.ts_ns, batch.series, batch.value, batch.flags, status,
                                   batch.origin)
        records = self._records(sealed, batch)
        while True:
            try:
                await self._dl.write(records)
                break
            except OSError as e:
                log.error("cannot write the dead-letter file %s: %s; retrying", self._dl.path, e)
                await asyncio.sleep(self._retry_max)
        self._m.counter("pantau_deadletter_records_total").inc(len(records))
        written = batch.ok & (batch.origin >= 0)
        n_written = int(np.count_nonzero(written))
        if n_written:
            self._h_delay.observe_many((self._clock() - batch.ts_ns[written]) / 1e9)
        n_dup = int(np.count_nonzero(batch.status == Reason.DUPLICATE))
        self._c_written.inc(n_written)
        self._c_dup.inc(n_dup)
        self._g_inflight.inc(-int(np.count_nonzero(sealed.batch.origin >= 0)))
        if self._on_stored is not None:
            self._on_stored(batch, sealed.received_ns)
        for mid, gen in sealed.acks:
            self._broker.ack(mid, gen)
        self._c_acked.inc(len(sealed.acks))
        self._g_unacked.inc(-len(sealed.acks))

    def _records(self, sealed: Sealed, batch: TelemetryBatch) -> list[DeadLetterRecord]:
        """Dead-letter records for whole rejected messages and for rejected readings (rare:
        this loops only over rejected rows)."""
        per_msg: dict[int, list[Rejected]] = {}
        for origin, notes in sealed.notes.items():
            per_msg.setdefault(origin, []).extend(
                Rejected(n.metric, n.reason, n.detail) for n in notes)
        bad = np.flatnonzero((batch.status != Reason.OK) & (batch.status != Reason.DUPLICATE)
                             & (batch.origin >= 0))
        table = self._decoder.table
        for i in bad.tolist():
            reason = Reason(int(batch.status[i]))
            metric = table.metric[int(batch.series[i])]
            per_msg.setdefault(int(batch.origin[i]), []).append(Rejected(
                metric, reason, f"{metric}={batch.value[i]!r}: {DESCRIPTIONS[reason]}"))
        records: list[DeadLetterRecord] = []
        for origin, note in sealed.rejected_messages.items():
            self._m.counter("pantau_messages_rejected_total", reason=note.reason.slug).inc()
            records.append(self._record(sealed, origin, note.reason, note.detail, []))
        for origin, rejected in per_msg.items():
            for r in rejected:
                self._m.counter("pantau_readings_rejected_total", reason=r.reason.slug).inc()
            records.append(self._record(sealed, origin, rejected[0].reason,
                                        "; ".join(r.detail for r in rejected), rejected))
        return records

    def _record(self, sealed: Sealed, origin: int, reason: Reason, detail: str,
                readings: list[Rejected]) -> DeadLetterRecord:
        topic = sealed.topics[origin]
        parts = topic.split("/")
        self._rlog.warning(parts[2] if len(parts) == 4 else topic,
                           "rejected %s from %s: %s", reason.slug, topic, detail)
        return DeadLetterRecord(topic, sealed.payloads[origin], sealed.received_ns[origin],
                                reason, detail, readings)

    async def _write(self, batch: TelemetryBatch) -> np.ndarray:
        """Write with retries; split on refusal. Returns the mask of refused rows."""
        refused = np.zeros(len(batch), dtype=bool)
        if len(batch) == 0:
            return refused
        self._h_batch.observe(len(batch))
        stack = [np.arange(len(batch))]
        while stack:
            idx = stack.pop()
            try:
                await self._write_retrying(batch if len(idx) == len(batch) else batch.take(idx))
            except SinkError as e:
                if len(idx) == 1:
                    refused[idx] = True
                    log.warning("database refused a reading: %s", e)
                else:
                    self._m.counter("pantau_write_splits_total").inc()
                    half = len(idx) // 2
                    stack.extend((idx[half:], idx[:half]))
        return refused

    async def _write_retrying(self, batch: TelemetryBatch) -> None:
        delay = self._retry_min
        while True:
            t0 = time.perf_counter()
            try:
                await self._sink.write(batch)
            except SinkError as e:
                if not e.retryable:
                    raise
                self.sink_ok = False
                self.last_sink_error = str(e)
                kind = str(e.status) if e.status else "network"
                self._m.counter("pantau_write_retries_total", kind=kind).inc()
                wait = max(random.uniform(delay / 2, delay), e.retry_after or 0.0)
                self._rlog.warning("sink", "write failed (%s); retrying in %.1f s", e, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._retry_max)
                continue
            self._h_write.observe(time.perf_counter() - t0)
            self.sink_ok = True
            self.last_sink_error = ""
            return
