"""The pipeline: messages in, batches sealed, processed, written, dead-lettered, acknowledged.

    on_message (event loop, sync) -> RowBuffer -> seal (size, or age while the writer is
        free) -> bounded deque -> the single writer (`ingest.write_loop`): processors (worker
        thread) -> sink: readings + derived rows in one write (retry, split refused batches)
        -> dead letters -> checkpoint (when due: tiers, state) -> listeners
        (`core.stored.Stored`: status store, alert rules) -> acks

Modules: this one (intake, batching, back-pressure), `ingest.write_loop` (the writer: one
sealed batch at a time, in order), `ingest.writer` (retries, splits, tier writes),
`ingest.rejections` (dead-letter records), `ingest.checkpoint` (the processors' counters,
tiers and state snapshots).

Batching adapts to the writer, as Nagle's algorithm and Telegraf's output buffer do: a batch
is sealed when it holds ``batch_size`` readings, or ``flush_interval_s`` after its first
message if the writer is free by then; while a write is in flight the open batch keeps
growing until the writer is free or the batch is full, so each write carries everything that
arrived during the previous one instead of one flush interval's worth. "Full" is
``batch_size`` readings, or ``max_batch_size`` while writes are slow: the last batch's
write, or the one in flight so far, took ``slow_write_s`` or more (retries included) and the
last attempt did not fail. A slow database (seconds per write) then gets fewer, bigger
writes, and Pantau stores up to ``max_batch_size`` readings per write latency instead of
falling behind at ``batch_size`` per latency. A fast one (well under a second per write, even
when Pantau is overloaded and the writer is busy with CPU work) keeps ``batch_size`` writes,
whose per-batch work on the event loop (listeners, dead letters, acks) stays short. While the
database fails (the last attempt failed), batches are sealed by age again, so reading pauses
after ``pending_batches`` and the backlog waits in the broker.

Guarantees:
- A message is acknowledged only after every reading it carried was written (2xx) or
  dead-lettered (fsync'd), never before; a crash before that means the broker redelivers.
  One write at a time (the sink's contract), in order, so acknowledgements go out in order
  and a series' readings reach the database in the order they arrived.
- Memory is bounded: at most ``pending_batches`` sealed batches (of at most ``batch_size``
  readings, or ``max_batch_size`` while writes are slow, as the open one) wait and at most
  ``max_unacked`` messages are unacknowledged; past either the source is paused and the
  rest waits in the broker.
- Conservation: readings received = written + rejected + duplicate + in flight, each a
  counter in `Metrics`; whole rejected messages are counted by reason.
- Retryable write errors are retried forever with jittered exponential backoff (honouring
  Retry-After); a refused batch (4xx) is split until the refused readings are isolated and
  dead-lettered as ``refused_by_database``.
- Derived rows (`processors.Chain.run`: flood stage, indices, z-scores, ``<metric>_q``) are
  written in the same request as the readings they come from, so one acknowledgement covers
  both; they have origin -1 and are not readings (counted apart; a refused one is counted and
  logged, not dead-lettered).
- Processing, checkpoints and listeners: `ingest.write_loop`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.reasons import Reason
from core.stored import StoredListener
from devices import topics
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder, Note, RowBuffer
from ingest.rejections import RateLimitedLog, Sealed
from ingest.snapshot import StateFile
from ingest.write_loop import WriteLoop
from ingest.writer import Sink
from processors import Chain

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_messages_received_total": ("counter", "MQTT messages received (telemetry+status)."),
    "pantau_messages_rejected_total": ("counter", "Whole messages rejected, by reason."),
    "pantau_messages_unacked": ("gauge", "Messages received and not yet acknowledged."),
    "pantau_status_messages_total": ("counter", "Device status (LWT) messages, by status."),
    "pantau_readings_received_total": ("counter", "Readings decoded from accepted messages "
                                       "(including those rejected one by one)."),
    "pantau_readings_rejected_total": ("counter", "Readings dead-lettered, by reason."),
    "pantau_readings_in_flight": ("gauge", "Readings decoded and not yet written or rejected."),
    "pantau_queue_batches": ("gauge", "Batches waiting for the writer, the one being written "
                             "included (and the open one once it is due: it grows meanwhile)."),
    "pantau_reading_paused": ("gauge", "1 while MQTT reading is paused by back-pressure."),
}

class Broker(Protocol):
    def ack(self, mid: int, generation: int) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


@dataclass(slots=True)
class _Open:
    rows: RowBuffer = field(default_factory=RowBuffer)
    acks: list[tuple[int, int]] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    received_ns: list[int] = field(default_factory=list)
    rejected_messages: dict[int, Note] = field(default_factory=dict)


class Pipeline:
    """Owns batching and back-pressure, and the single writer (`WriteLoop`, run by `run`).
    `on_message` runs on the event loop thread."""

    def __init__(self, *, decoder: Decoder, chain: Chain, sink: Sink,
                 deadletter: DeadLetter, metrics: Metrics, broker: Broker,
                 batch_size: int = 5000, max_batch_size: int = 20000,
                 flush_interval_s: float = 0.25, slow_write_s: float = 1.0,
                 pending_batches: int = 4, max_unacked: int = 20000,
                 retry_min_s: float = 0.2, retry_max_s: float = 15.0,
                 clock: Callable[[], int] = time.time_ns,
                 on_status: Callable[[str, bytes], None] | None = None,
                 listeners: Sequence[StoredListener] = (),
                 state_file: StateFile | None = None,
                 snapshot_interval_s: float = 5.0) -> None:
        """``listeners``: told of every stored batch (`core.stored.Stored`), in order, after its
        writes and dead letters and before its acks. ``max_batch_size`` (at least
        ``batch_size``): the bound of a batch while the write in flight has lasted
        ``slow_write_s`` or more (see the module docstring)."""
        if max_batch_size < batch_size:
            raise ValueError(f"max_batch_size ({max_batch_size}) is below batch_size "
                             f"({batch_size})")
        self._decoder, self._m, self._broker, self._clock = decoder, metrics, broker, clock
        metrics.describe(HELP)
        self._batch_size, self._max_batch, self._slow_s = batch_size, max_batch_size, \
            slow_write_s
        self._flush_s, self._max_pending = flush_interval_s, pending_batches
        self._max_unacked = max_unacked
        self._on_status = on_status
        self._open = _Open()
        self._timer: asyncio.TimerHandle | None = None
        self._due = False  # the open batch is old enough: sealed as soon as the writer is free
        self._queue: deque[Sealed] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._paused = False
        self._rlog = RateLimitedLog()
        self._loop = WriteLoop(intake=self, decoder=decoder, chain=chain, sink=sink,
                               deadletter=deadletter, metrics=metrics, broker=broker,
                               rlog=self._rlog, retry_min_s=retry_min_s,
                               retry_max_s=retry_max_s, clock=clock, listeners=listeners,
                               state_file=state_file, snapshot_interval_s=snapshot_interval_s)
        self._writer = self._loop.writer
        m = metrics
        self._c_msgs = m.counter("pantau_messages_received_total")
        self._c_readings = m.counter("pantau_readings_received_total")
        self._g_unacked = m.gauge("pantau_messages_unacked")
        self._g_inflight = m.gauge("pantau_readings_in_flight")
        self._g_queue = m.gauge("pantau_queue_batches")
        self._g_paused = m.gauge("pantau_reading_paused")

    @property
    def sink_ok(self) -> bool:
        """Whether the last write attempt succeeded (for readiness)."""
        return self._writer.sink_ok

    @property
    def last_sink_error(self) -> str:
        return self._writer.last_sink_error

    # -- intake (sync, on the event loop) -------------------------------------------------
    def on_message(self, topic: str, payload: bytes, mid: int, generation: int) -> None:
        """Take one message into the open batch. Never raises: whatever handling it raises (a
        bug) sets that message aside as ``internal_error`` and ingest goes on."""
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
        before = len(rows)
        try:
            if topics.is_status(topic):
                self._status(topic, payload)
            else:
                self._decode(op, topic, payload, now, origin)
        except Exception as e:  # the message boundary: one message must not stall the city
            self._internal_error(op, origin, before, topic, e)
        if self._g_unacked.value >= self._max_unacked and not self._paused:
            # Crossing the cap seals once and pauses; what the source still hands over
            # (the rest of its read buffer) joins the open batch instead of tiny ones.
            self._seal()
            self._update_pause()
        elif len(rows) >= self._batch_size and (not self._queue or len(rows) >= self._full_at()):
            self._seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._aged)

    def _decode(self, op: _Open, topic: str, payload: bytes, now: int, origin: int) -> None:
        rows = op.rows.ts_ns
        before = len(rows)
        note = self._decoder.decode(topic, payload, now, op.rows, origin)
        if note is not None:
            op.rejected_messages[origin] = note
        added = len(rows) - before
        notes = op.rows.notes.get(origin) if op.rows.notes else None
        self._c_readings.value += added + (len(notes) if notes else 0)
        self._g_inflight.value += added

    def _internal_error(self, op: _Open, origin: int, rows: int, topic: str,
                        e: Exception) -> None:
        """Dead-letter message ``origin`` as ``internal_error`` (its payload is kept): forget
        what it added, log the traceback at most once a minute."""
        op.rows.truncate(rows, origin)
        try:
            text = str(e)[:300]
        except Exception:  # an exception can fail to print (an int beyond 4300 digits)
            text = "(unprintable)"
        op.rejected_messages[origin] = Note(Reason.INTERNAL_ERROR,
                                            f"{type(e).__name__}: {text}")
        self._rlog.exception(Reason.INTERNAL_ERROR.slug, "handling a message on %s raised; it "
                             "is dead-lettered as internal_error and ingest goes on", topic[:200])

    def _status(self, topic: str, payload: bytes) -> None:
        state = topics.parse_status(payload) or "unknown"
        self._m.counter("pantau_status_messages_total", status=state).inc()
        if self._on_status is not None:
            self._on_status(topic, payload)

    def _aged(self) -> None:
        """The open batch is ``flush_interval_s`` old: sealed now if the writer is free, or
        failing (while the database is down, batches are sealed by age and reading pauses
        after ``pending_batches``: the backlog is no safer in memory than in the broker);
        while a write is in flight, it grows until the writer is free (`next_batch`) or full
        (adaptive batching). A due batch counts in ``pantau_queue_batches``: it waits."""
        self._timer = None
        if self._queue and self._writer.sink_ok:  # the queue's first is being written
            self._due = True
            self._g_queue.set(len(self._queue) + 1)
        else:
            self._seal()

    def _seal(self) -> None:
        self._due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        op = self._open
        if not op.acks:
            self._g_queue.set(len(self._queue))
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

    # -- the writer (`ingest.write_loop`) ---------------------------------------------------
    def _full_at(self) -> int:
        """Readings at which the open batch is sealed while the writer is busy: ``batch_size``,
        or ``max_batch_size`` while writes are slow (the last one, or the one in flight so far,
        took ``slow_write_s`` or more) and not failing."""
        slow = self._writer.sink_ok and self._loop.write_seconds() >= self._slow_s
        return self._max_batch if slow else self._batch_size

    async def next_batch(self) -> Sealed:
        """`Intake`: the oldest sealed batch; the open one is sealed now if it aged or filled
        while the writer was busy (the writer is free now)."""
        if not self._queue and (self._due or len(self._open.rows.ts_ns) >= self._batch_size):
            self._seal()
        while not self._queue:
            self._idle.set()
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue[0]

    def done(self) -> None:
        """`Intake`: the oldest sealed batch is written and acknowledged."""
        self._queue.popleft()
        self._g_queue.set(len(self._queue) + self._due)
        self._update_pause()

    async def run(self) -> None:
        """The single writer; runs until cancelled. Cancel only after `drain` for a clean stop."""
        await self._loop.run()

    async def drain(self) -> None:
        """Seal the open batch, wait until everything sealed is written and acknowledged,
        then save the processors' state."""
        self._seal()
        await self._idle.wait()
        await self._loop.state.checkpoint(force=True, all_open=True)

    # -- processor state (`ingest.checkpoint`) ---------------------------------------------
    def restore_state(self) -> bool:
        """See `Checkpoints.restore`."""
        return self._loop.state.restore()

    def publish_counts(self) -> None:
        """See `Checkpoints.publish_counts`."""
        self._loop.state.publish_counts()
