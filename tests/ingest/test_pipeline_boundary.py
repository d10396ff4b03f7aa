"""The message boundary (issue #9): whatever handling one message raises, that message is
dead-lettered as ``internal_error`` with its payload, counted, acknowledged, logged at most
once a minute, and the messages around it are stored as usual."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.reasons import Reason
from devices.registry import default_registry_path, load_registry
from devices.series import SeriesTable
from ingest.deadletter import DeadLetter
from ingest.decode import Decoder, Note, RowBuffer
from ingest.pipeline import Pipeline
from processors import ProcessorContext, build_chain

NOW_S = 1_795_836_000
TOPIC = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
STATUS = "pantau/kanigoro/wl-brantas-kanigoro/status"
TABLE = SeriesTable.from_registry(load_registry(default_registry_path()))
BOOM = b"boom"


class BuggyDecoder(Decoder):
    """Appends a row, then raises, for payload ``boom``: as a bug deep in a parser would."""

    def decode(self, topic: str, payload: bytes, now_ns: int, out: RowBuffer,
               origin: int) -> Note | None:
        if payload == BOOM:
            out.ts_ns.append(now_ns)
            out.series.append(0)
            out.value.append(1.0)
            out.origin.append(origin)
            out.note(origin, Reason.UNKNOWN_METRIC, "half done")
            raise OverflowError("int too large to convert to float")
        return super().decode(topic, payload, now_ns, out, origin)


class Broker:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, mid: int, generation: int) -> bool:
        self.acked.append(mid)
        return True

    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Sink:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def write(self, batch: TelemetryBatch) -> None:
        self.values.extend(batch.value.tolist())


def reading(i: int) -> bytes:
    return json.dumps({"ts": NOW_S - 60 + i, "values": {"level_cm": 100.0 + i}}).encode()


def bad_status(topic: str, payload: bytes) -> None:
    raise RuntimeError("a bug in the status store")


async def test_a_raising_handler_dead_letters_only_its_message(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker, sink, metrics = Broker(), Sink(), Metrics()
    chain = build_chain(["calibration", "range_check", "dedupe"], ProcessorContext(TABLE))
    dl = tmp_path / "dl.jsonl"
    p = Pipeline(decoder=BuggyDecoder(TABLE), chain=chain, sink=sink,
                 deadletter=DeadLetter(dl, lambda t, b: None, "dl"), metrics=metrics,
                 broker=broker, flush_interval_s=10.0, clock=lambda: NOW_S * 10**9,
                 on_status=bad_status)
    writer = asyncio.create_task(p.run())
    with caplog.at_level(logging.ERROR, logger="pantau.pipeline"):
        p.on_message(TOPIC, reading(0), 1, 1)
        p.on_message(TOPIC, BOOM, 2, 1)
        p.on_message(TOPIC, reading(1), 3, 1)
        p.on_message(TOPIC, BOOM, 4, 1)
        p.on_message(STATUS, b"online", 5, 1)
        p.on_message(TOPIC, reading(2), 6, 1)
        await p.drain()
    writer.cancel()
    assert sink.values == [100.0, 101.0, 102.0]
    assert broker.acked == [1, 2, 3, 4, 5, 6]
    lines = [json.loads(line) for line in dl.read_text().splitlines()]
    assert [(r["reason"], r["payload"]) for r in lines] == [
        ("internal_error", "boom"), ("internal_error", "boom"), ("internal_error", "online")]
    assert lines[0]["detail"] == "OverflowError: int too large to convert to float"
    assert metrics.value("pantau_messages_rejected_total", reason="internal_error") == 3
    assert metrics.value("pantau_readings_received_total") == 3
    assert metrics.value("pantau_readings_in_flight") == 0
    assert metrics.value("pantau_messages_unacked") == 0
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # once per minute, however many messages
