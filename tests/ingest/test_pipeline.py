"""Pipeline batching and back-pressure, with an in-memory sink and broker seam (the real
services are exercised in tests/e2e): what is sealed, when reading pauses, what is acked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.stored import Stored
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder
from ingest.pipeline import Pipeline
from processors import ProcessorContext, build_chain

NOW_S = 1_795_836_000
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"


class Broker:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.paused = False
        self.pauses = 0

    def ack(self, mid: int, generation: int) -> bool:
        self.acked.append(mid)
        return True

    def pause(self) -> None:
        self.paused, self.pauses = True, self.pauses + 1

    def resume(self) -> None:
        self.paused = False


class Sink:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = asyncio.Event()

    async def write(self, batch: TelemetryBatch) -> None:
        await self.gate.wait()
        self.batches.append(len(batch))


def make(tmp_path: Path, **kw: int) -> tuple[Pipeline, Broker, Sink, Metrics]:
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    broker, sink, metrics = Broker(), Sink(), Metrics()
    chain = build_chain(["calibration", "range_check", "dedupe"], ProcessorContext(table))
    p = Pipeline(decoder=Decoder(table), chain=chain, sink=sink,
                 deadletter=DeadLetter(tmp_path / "dl.jsonl", lambda t, b: None, "dl"),
                 metrics=metrics, broker=broker, flush_interval_s=10.0,
                 clock=lambda: NOW_S * 10**9, **kw)
    return p, broker, sink, metrics


def message(i: int) -> bytes:
    return json.dumps({"ts": NOW_S - 3600 + i, "values": {"level_cm": 100.0 + i}}).encode()


async def test_crossing_the_unacked_cap_seals_once_and_pauses(tmp_path: Path) -> None:
    p, broker, sink, m = make(tmp_path, max_unacked=10, batch_size=1000, pending_batches=100)
    writer = asyncio.create_task(p.run())
    for i in range(25):  # a read buffer's worth keeps coming after the pause
        p.on_message(TOPIC, message(i), i + 1, 1)
    assert broker.paused and broker.pauses == 1
    sink.gate.set()
    await p.drain()
    writer.cancel()
    # One batch at the cap, then the overrun joined one open batch: no one-message batches.
    assert sink.batches == [10, 15]
    assert broker.acked == list(range(1, 26))
    assert not broker.paused
    assert m.value("pantau_readings_written_total") == 25
    assert m.value("pantau_messages_unacked") == 0


async def test_full_queue_pauses_until_the_writer_catches_up(tmp_path: Path) -> None:
    p, broker, sink, _ = make(tmp_path, max_unacked=1000, batch_size=2, pending_batches=2)
    writer = asyncio.create_task(p.run())
    for i in range(6):
        p.on_message(TOPIC, message(i), i + 1, 1)
        await asyncio.sleep(0)
    assert broker.paused  # the writer is blocked; sealed batches waiting >= 2
    assert broker.acked == []  # nothing acknowledged before the write
    sink.gate.set()
    await p.drain()
    writer.cancel()
    assert sink.batches == [2, 2, 2]
    assert broker.acked == [1, 2, 3, 4, 5, 6]
    assert not broker.paused


class Recorder:
    """A stored-batch listener that keeps what it is told, and the acks seen by then."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.seen: list[Stored] = []
        self.acked_before: list[list[int]] = []

    def on_stored(self, stored: Stored) -> None:
        self.seen.append(stored)
        self.acked_before.append(list(self.broker.acked))


class Broken:
    def on_stored(self, stored: Stored) -> None:
        raise RuntimeError("a bug in a listener")


async def test_listeners_hear_each_stored_batch_before_its_acks(tmp_path: Path) -> None:
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    broker, sink, metrics = Broker(), Sink(), Metrics()
    chain = build_chain(["calibration", "range_check", "dedupe", "flood"],
                        ProcessorContext(table))
    recorder = Recorder(broker)
    p = Pipeline(decoder=Decoder(table), chain=chain, sink=sink,
                 deadletter=DeadLetter(tmp_path / "dl.jsonl", lambda t, b: None, "dl"),
                 metrics=metrics, broker=broker, flush_interval_s=10.0, batch_size=3,
                 clock=lambda: NOW_S * 10**9, listeners=[Broken(), recorder])
    sink.gate.set()
    writer = asyncio.create_task(p.run())
    p.on_message(TOPIC, message(0), 1, 1)
    p.on_message(TOPIC, b'{"ts": 1, "values": {"level_cm": 1}}', 2, 1)  # ts_too_old
    p.on_message(TOPIC, message(2), 3, 1)
    await p.drain()
    writer.cancel()
    assert broker.acked == [1, 2, 3]                  # the broken listener stopped nothing
    assert recorder.acked_before == [[]]              # told before any ack
    (stored,) = recorder.seen
    assert len(stored.batch) == 2 and len(stored.readings) == 2
    assert stored.received_ns.tolist() == [NOW_S * 10**9] * 3
    assert stored.now_ns == NOW_S * 10**9
    names = {chain.table.metric[int(s)] for s in stored.derived.series}
    assert "flood_stage" in names                      # derived rows come along
    assert metrics.value("pantau_listener_errors_total", listener="Broken") == 1
