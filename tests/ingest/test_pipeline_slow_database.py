"""The writer against the real InfluxDB behind the fault suite's proxy, answering each write
after ``DELAY_S``: once writes are slow (``slow_write_s``) a batch grows past ``batch_size`` up
to ``max_batch_size`` while a write is in flight, so each write carries what arrived during the
previous one; everything is stored once and acknowledged in order, reading never pauses.

The stream is driven by the proxy: a chunk of messages is offered as soon as a write arrives
there (and is held for ``DELAY_S``), so what each write carries does not depend on timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.settings import Secret
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder
from ingest.influx_v1 import InfluxV1Sink
from ingest.pipeline import Pipeline
from ingest.settings import InfluxSettings
from pantau.devstack import InfluxDB1, free_port
from pantau.faults.proxy import FaultProxy
from processors import ProcessorContext, build_chain
from processors.domain.derived import Tier
from tests.ingest.test_pipeline import Broker
from tests.ingest.test_pipeline_adaptive import NOW_S, TOPIC, message

DELAY_S, SLOW_S = 2.0, 1.0  # every write takes DELAY_S: slow once one has finished
BATCH, MAX_BATCH, CHUNK, ROUNDS = 100, 1000, 300, 3


class Recording:
    """The real sink, recording the readings of each successful write."""

    def __init__(self, sink: InfluxV1Sink) -> None:
        self.sink, self.sizes = sink, list[int]()

    async def write(self, batch: TelemetryBatch) -> None:
        await self.sink.write(batch)
        self.sizes.append(len(batch))

    async def write_tier(self, tier: Tier) -> None:
        await self.sink.write_tier(tier)


async def until(check: Callable[[], bool], what: str, within: float = 120.0) -> None:
    """Poll ``check()`` until true; a generous deadline against a hang, not a timing bound."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.01)


async def test_a_slow_database_gets_fewer_bigger_writes(influx: InfluxDB1, influx_db: str,
                                                        tmp_path: Path) -> None:
    table = SeriesTable.from_registry(load_registry(default_registry_path()))
    proxy = FaultProxy(influx.url, "127.0.0.1", free_port())
    await proxy.start()
    proxy.slow(DELAY_S)
    settings = InfluxSettings(url=proxy.url, database=influx_db,
                              username=influx.writer.username,
                              password=Secret(influx.writer.password))
    broker, metrics = Broker(), Metrics()
    try:
        async with InfluxV1Sink(settings, table) as real:
            sink = Recording(real)
            p = Pipeline(decoder=Decoder(table), sink=sink, metrics=metrics, broker=broker,
                         chain=build_chain(["calibration", "range_check", "dedupe"],
                                           ProcessorContext(table)),
                         deadletter=DeadLetter(tmp_path / "dl.jsonl", lambda t, b: None, "dl"),
                         batch_size=BATCH, max_batch_size=MAX_BATCH, slow_write_s=SLOW_S,
                         flush_interval_s=0.01, clock=lambda: NOW_S * 10**9)
            writer = asyncio.create_task(p.run())
            sent = 0

            def offer(n: int) -> None:
                nonlocal sent
                for _ in range(n):
                    p.on_message(TOPIC, message(sent), sent + 1, 1)
                    sent += 1

            def writes() -> int:
                return sum(1 for s in proxy.arrived if s.path == "/write")

            offer(10)  # the first write: once it has finished, writes are known to be slow
            await until(lambda: sink.sizes == [10], "the first write")
            offer(10)
            for n in range(2, ROUNDS + 2):  # a chunk arrives during each write, held there
                await until(lambda n=n: writes() >= n, f"write {n} at the proxy")
                offer(CHUNK)
            await p.drain()
            writer.cancel()
    finally:
        await proxy.close()
    # Each chunk grew into one write, three times batch_size: batch_size per slow write could
    # not keep up; nothing waited sealed behind the write in flight, so reading never paused.
    assert sink.sizes == [10, 10] + [CHUNK] * ROUNDS
    assert broker.pauses == 0
    assert broker.acked == list(range(1, sent + 1))
    assert metrics.value("pantau_readings_written_total") == sent
    rows = influx.rows("SELECT count(level_cm) FROM river_gauge", db=influx_db)
    assert rows[0]["count"] == sent
