"""Adaptive batching against a slow database: while a write is in flight the open batch grows
(up to ``batch_size``, or ``max_batch_size`` once writes are slow) instead of being sealed
every flush interval, so each write carries what arrived during the previous one and
throughput does not collapse to one flush interval per write. While the database is down,
batches are sealed by age as before, so reading pauses and the backlog waits in the broker.
The sink's writes are released by the test, one at a time: no timing assertions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder
from ingest.errors import SinkError
from ingest.pipeline import Pipeline
from processors import ProcessorContext, build_chain
from tests.ingest.test_pipeline import Broker

NOW_S = 1_795_836_000
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
TICKS, PER_TICK = 10, 10  # one slow write lasts 10 flush intervals, 10 messages each


def message(i: int) -> bytes:
    return json.dumps({"ts": NOW_S - 3600 + i, "values": {"level_cm": 100.0 + i}}).encode()


class SlowSink:
    """Each write waits until the test lets it finish (`finish`): a database taking many
    flush intervals per write. Records the readings of every request."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.started = 0
        self._permits = asyncio.Semaphore(0)
        self._arrived = asyncio.Event()

    async def write(self, batch: TelemetryBatch) -> None:
        self.started += 1
        self._arrived.set()
        await self._permits.acquire()
        self.batches.append(len(batch))

    def finish(self, n: int = 1) -> None:
        for _ in range(n):
            self._permits.release()

    async def until_started(self, n: int) -> None:
        while self.started < n:
            self._arrived.clear()
            await self._arrived.wait()


class Device:
    """Offers messages to the pipeline as the broker would: none while reading is paused
    (they wait in the broker, in order)."""

    def __init__(self, p: Pipeline, broker: Broker) -> None:
        self.p, self.broker, self.sent = p, broker, 0

    def offer(self, n: int) -> None:
        for _ in range(n):
            if self.broker.paused:
                return
            self.p.on_message(TOPIC, message(self.sent), self.sent + 1, 1)
            self.sent += 1

    async def during_a_write(self) -> None:
        """TICKS flush intervals pass (the age timer fires each time), PER_TICK messages each."""
        for _ in range(TICKS):
            self.offer(PER_TICK)
            await asyncio.sleep(0.005)  # > flush_interval_s: the age timer fires


def make(tmp_path: Path, batch_size: int, sink: SlowSink | None = None, *,
         max_batch_size: int = 20000, slow_write_s: float = 3600.0
         ) -> tuple[Pipeline, Broker, SlowSink, Metrics]:
    """A pipeline whose writes count as slow after ``slow_write_s`` (by default never: the
    test's own pauses must not decide what is sealed)."""
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    broker, sink, metrics = Broker(), sink or SlowSink(), Metrics()
    chain = build_chain(["calibration", "range_check", "dedupe"], ProcessorContext(table))
    p = Pipeline(decoder=Decoder(table), chain=chain, sink=sink,
                 deadletter=DeadLetter(tmp_path / "dl.jsonl", lambda t, b: None, "dl"),
                 metrics=metrics, broker=broker, flush_interval_s=0.001,
                 batch_size=batch_size, max_batch_size=max_batch_size,
                 slow_write_s=slow_write_s, pending_batches=4, clock=lambda: NOW_S * 10**9,
                 retry_min_s=0.01, retry_max_s=0.02)
    return p, broker, sink, metrics


async def test_a_slow_database_gets_one_growing_batch_per_write(tmp_path: Path) -> None:
    p, broker, sink, m = make(tmp_path, batch_size=1000)
    device = Device(p, broker)
    writer = asyncio.create_task(p.run())
    device.offer(PER_TICK)
    await sink.until_started(1)  # aged while the writer was free: sealed at once
    rounds = 5
    for r in range(rounds):
        await device.during_a_write()
        sink.finish()
        await sink.until_started(r + 2)
    sink.finish(100)
    await p.drain()
    writer.cancel()
    per_write = TICKS * PER_TICK
    # One request per slow write, each carrying everything that arrived during the previous
    # one; the old age timer sealed ten 10-reading batches per write and paused reading.
    assert sink.batches == [PER_TICK] + [per_write] * rounds
    assert broker.pauses == 0
    assert device.sent == PER_TICK + rounds * per_write
    assert broker.acked == list(range(1, device.sent + 1))
    assert m.value("pantau_readings_written_total") == device.sent
    assert m.value("pantau_messages_unacked") == 0


async def test_while_the_writer_is_busy_batches_grow_up_to_batch_size(tmp_path: Path) -> None:
    p, broker, sink, _ = make(tmp_path, batch_size=40)
    device = Device(p, broker)
    writer = asyncio.create_task(p.run())
    device.offer(PER_TICK)
    await sink.until_started(1)
    await device.during_a_write()  # 100 messages: two full batches sealed, 20 left open
    assert broker.pauses == 0 and device.sent == PER_TICK + TICKS * PER_TICK
    sink.finish(100)
    await p.drain()
    writer.cancel()
    assert sink.batches == [PER_TICK, 40, 40, 20]
    assert broker.acked == list(range(1, device.sent + 1))


async def test_while_writes_are_slow_batches_grow_up_to_max_batch_size(tmp_path: Path) -> None:
    # slow_write_s=0: every write in flight is slow; the real slowness is in
    # test_pipeline_slow_database (the real InfluxDB behind the fault proxy).
    p, broker, sink, _ = make(tmp_path, batch_size=40, max_batch_size=60, slow_write_s=0.0)
    device = Device(p, broker)
    writer = asyncio.create_task(p.run())
    device.offer(PER_TICK)
    await sink.until_started(1)
    await device.during_a_write()  # 100 messages: one batch of 60 sealed, 40 left open
    assert broker.pauses == 0
    sink.finish(100)
    await p.drain()
    writer.cancel()
    assert sink.batches == [PER_TICK, 60, 40]
    assert broker.acked == list(range(1, device.sent + 1))


def test_max_batch_size_below_batch_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        make(tmp_path, batch_size=100, max_batch_size=99)


class FailingSink(SlowSink):
    """The database is down until `heal`: every attempt fails, retryably."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def write(self, batch: TelemetryBatch) -> None:
        if self.down:
            raise SinkError("connection refused", retryable=True)
        self.batches.append(len(batch))


async def test_while_the_database_is_down_batches_seal_by_age_and_reading_pauses(
        tmp_path: Path) -> None:
    sink = FailingSink()
    p, broker, _, m = make(tmp_path, batch_size=1000, sink=sink)
    device = Device(p, broker)
    writer = asyncio.create_task(p.run())
    for _ in range(10 * TICKS):  # the writer retries; flush intervals pass
        device.offer(PER_TICK)
        await asyncio.sleep(0.005)
        if broker.paused:
            break
    # The backlog waits in the broker, not in memory: small batches, then a pause.
    assert broker.paused and m.value("pantau_queue_batches") == 4
    assert device.sent < TICKS * PER_TICK
    sink.down = False
    await p.drain()
    writer.cancel()
    assert sum(sink.batches) == device.sent
    assert broker.acked == list(range(1, device.sent + 1))
