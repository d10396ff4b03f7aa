"""The single writer: takes the sealed batches of an `Intake` (the pipeline's batching) one at
a time, in order, and for each: processors (worker thread) -> sink: readings + derived rows in
one write (`ingest.writer`: retries, splits) -> dead letters (fsync'd) -> checkpoint (when due,
`ingest.checkpoint`) -> listeners (`core.stored.Stored`) -> acks.

Contract:
- One batch at a time, in the order sealed: the processors see the readings in order, one
  call at a time (their state is never touched concurrently), the checkpoint's state snapshot
  never covers a batch that is not yet written, and acknowledgements go out in order.
- A message is acknowledged only after every reading it carried was written (2xx) or
  dead-lettered, and after the listeners were told; a failure of the dead-letter file is
  retried (with the writer's backoff) and nothing of the batch is acknowledged meanwhile.
- A listener that raises is counted and logged; ingest goes on (the data is stored).
- The processor chain runs in a worker thread (`asyncio.to_thread`), so that a big batch does
  not hold the event loop: only the writer calls the chain, one call at a time (the checkpoint
  and its state snapshot come after, never during, a batch's processing); listeners, counters
  and acks stay on the event loop.
- Checkpoint, at most every ``snapshot_interval_s`` (0: every batch) and after the
  pipeline's `drain`, after the writes and before the acks: the tiers of the batches since
  the last one (aggregated there in one pass, `processors.Chain.flush_tiers`), one row per
  bucket, written with the same retries (a tier whose retention policy or bucket is missing
  is skipped, counted and logged with the fix: tiers can be rebuilt from the readings,
  held-back readings cannot); then the processors' state (`StateFile`), which the pipeline
  restores on start (`ingest.checkpoint`).
- `WriteLoop.run` runs until cancelled; cancel it only once the intake is idle (`drain`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from core.batch import TelemetryBatch
from core.metrics import DELAY_BUCKETS, Metrics
from core.reasons import Reason
from core.stored import Stored, StoredListener
from ingest.checkpoint import Checkpoints
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder
from ingest.rejections import RateLimitedLog, Sealed, dead_letters
from ingest.snapshot import StateFile
from ingest.writer import Sink, Writer
from processors import Chain, Processed

HELP: dict[str, tuple[str, str]] = {  # this module's metrics (`Metrics.describe`)
    "pantau_messages_acked_total": ("counter", "Messages acknowledged to the broker after "
                                    "their readings were written or dead-lettered."),
    "pantau_readings_written_total": ("counter", "Readings written to the database (2xx)."),
    "pantau_readings_duplicate_total": ("counter", "Exact duplicate readings stored once."),
    "pantau_ingest_delay_seconds": ("histogram", "From a reading's device timestamp to its "
                                    "successful write (includes device clock offset)."),
    "pantau_deadletter_records_total": ("counter", "Records appended to the dead-letter file."),
    "pantau_derived_written_total": ("counter", "Derived values (flood stage, indices, "
                                     "z-scores, quality flags) written beside the readings."),
    "pantau_derived_refused_total": ("counter", "Derived values the database refused (logged, "
                                     "not dead-lettered: they are not readings)."),
    "pantau_listener_errors_total": ("counter", "Stored-batch listeners (status store, alert "
                                     "rules) that raised, by listener; ingest went on."),
    "pantau_process_seconds": ("histogram", "Time spent in the processor chain per batch."),
}


class Intake(Protocol):
    """Where the sealed batches come from (`ingest.pipeline.Pipeline`). Both are called on the
    event loop, by the writer only, alternately: `next_batch`, then `done` once it is handled."""

    async def next_batch(self) -> Sealed:
        """The oldest sealed batch (left in place until `done`); waits for one."""
        ...

    def done(self) -> None:
        """The batch `next_batch` returned is written, dead-lettered and acknowledged."""
        ...


class Acker(Protocol):
    def ack(self, mid: int, generation: int) -> bool: ...


class WriteLoop:
    """The single writer (see the module docstring). ``writer`` is its `Writer`, whose
    ``sink_ok``, with `write_seconds`, the intake reads to size and seal batches."""

    def __init__(self, *, intake: Intake, decoder: Decoder, chain: Chain, sink: Sink,
                 deadletter: DeadLetter, metrics: Metrics, broker: Acker, rlog: RateLimitedLog,
                 retry_min_s: float, retry_max_s: float, clock: Callable[[], int],
                 listeners: Sequence[StoredListener], state_file: StateFile | None,
                 snapshot_interval_s: float) -> None:
        self._intake, self._decoder, self._chain, self._dl = intake, decoder, chain, deadletter
        self._m, self._broker, self._rlog, self._clock = metrics, broker, rlog, clock
        self._retry_min, self._retry_max = retry_min_s, retry_max_s
        self._listeners = tuple(listeners)
        metrics.describe(HELP)
        self.writer = Writer(sink, metrics, rlog, retry_min_s=retry_min_s,
                             retry_max_s=retry_max_s)
        self.state = Checkpoints(chain, self.writer, metrics, rlog, state_file,
                                 snapshot_interval_s)
        m = metrics
        self._c_acked = m.counter("pantau_messages_acked_total")
        self._c_written = m.counter("pantau_readings_written_total")
        self._c_dup = m.counter("pantau_readings_duplicate_total")
        self._g_unacked = m.gauge("pantau_messages_unacked")
        self._g_inflight = m.gauge("pantau_readings_in_flight")
        self._h_delay = m.histogram("pantau_ingest_delay_seconds", DELAY_BUCKETS)
        self._c_derived = m.counter("pantau_derived_written_total")
        self._h_process = m.histogram("pantau_process_seconds")
        self._writing_since: float | None = None  # time.monotonic() the write in flight began
        self._last_write_s = 0.0

    def write_seconds(self) -> float:
        """How long writes take: the last batch's write or, while one is in flight and has
        lasted longer, that one's so far (retries included)."""
        if self._writing_since is None:
            return self._last_write_s
        return max(self._last_write_s, time.monotonic() - self._writing_since)

    async def run(self) -> None:
        """Handle the intake's batches, in order, until cancelled."""
        while True:
            await self.handle(await self._intake.next_batch())
            self._intake.done()

    def _tell(self, stored: Stored) -> None:
        for listener in self._listeners:
            try:
                listener.on_stored(stored)
            except Exception:  # the data is stored: a listener's bug must not stop ingest
                name = type(listener).__name__
                self._m.counter("pantau_listener_errors_total", listener=name).inc()
                self._rlog.exception(name, "stored-batch listener %s failed", name)

    def _process(self, batch: TelemetryBatch) -> tuple[Processed, float]:
        """The chain over ``batch``, in the writer's worker thread: (what it made, seconds)."""
        t0 = time.perf_counter()
        out = self._chain.run(batch, defer_tiers=True)
        return out, time.perf_counter() - t0

    async def handle(self, sealed: Sealed) -> None:
        """Process, write, dead-letter, checkpoint, tell and acknowledge one sealed batch."""
        out, seconds = await asyncio.to_thread(self._process, sealed.batch)
        self._h_process.observe(seconds)
        batch = out.batch
        stored = batch.ok
        raw = batch.take(stored)
        n_raw, n_derived = len(raw), len(out.derived)
        self._writing_since = t0 = time.monotonic()
        try:
            refused = await self.writer.write(TelemetryBatch.concat([raw, out.derived])
                                              if n_derived else raw)
        finally:
            self._writing_since = None
        self._last_write_s = time.monotonic() - t0
        if refused[:n_raw].any():
            idx = np.flatnonzero(stored)[refused[:n_raw]]
            status = batch.status.copy()
            status[idx] = Reason.REFUSED_BY_DATABASE
            batch = TelemetryBatch(batch.ts_ns, batch.series, batch.value, batch.flags, status,
                                   batch.origin)
        n_refused_derived = int(np.count_nonzero(refused[n_raw:]))
        derived = out.derived.take(~refused[n_raw:]) if n_refused_derived else out.derived
        self._c_derived.inc(n_derived - n_refused_derived)
        if n_refused_derived:
            self._m.counter("pantau_derived_refused_total").inc(n_refused_derived)
        self.state.processed(out.tiers)
        await self._dead_letters(sealed, batch)
        await self.state.checkpoint()
        written = batch.ok & (batch.origin >= 0)
        n_written = int(np.count_nonzero(written))
        if n_written:
            self._h_delay.observe_many((self._clock() - batch.ts_ns[written]) / 1e9)
        self._c_written.inc(n_written)
        self._c_dup.inc(int(np.count_nonzero(batch.status == Reason.DUPLICATE)))
        self._g_inflight.inc(-int(np.count_nonzero(sealed.batch.origin >= 0)))
        if self._listeners:
            self._tell(Stored(batch, derived, np.asarray(sealed.received_ns, np.int64),
                              self._clock()))
        for mid, gen in sealed.acks:
            self._broker.ack(mid, gen)
        self._c_acked.inc(len(sealed.acks))
        self._g_unacked.inc(-len(sealed.acks))

    async def _dead_letters(self, sealed: Sealed, batch: TelemetryBatch) -> None:
        """Append the batch's dead letters; nothing of it is acknowledged before they are
        durable, so a failing file (disk full, read-only) is retried with backoff."""
        records = dead_letters(sealed, batch, self._decoder.table, self._m, self._rlog)
        delay = self._retry_min
        while True:
            try:
                await self._dl.write(records)
                break
            except OSError as e:  # counted, readiness red (`DeadLetter`)
                self._rlog.warning("deadletter", "cannot write the dead-letter file %s: %s; "
                                   "%d messages wait unacknowledged, retrying", self._dl.path,
                                   e, len(sealed.acks))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        self._m.counter("pantau_deadletter_records_total").inc(len(records))
