"""A snapshot saved before the processors kept bucketed state (issue 13: ``aqi/history_*`` and
``flood/level_*``, every raw reading of the window) is set aside on start, and the warm-up
rebuilds the state from the readings stored in InfluxDB (the real one), so that the chain
continues exactly like the one that wrote them.

``data/processors-pre-rings.npz`` was saved by the code before commit 173f04c (the default
chain on the shipped Blitar registry of then, kept beside it as ``registry-pre-rings.yaml``,
an hour of readings of every series every 5 minutes), compressed; it is what a Pantau upgraded
from that version finds in its state directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.metrics import Metrics
from core.settings import Secret
from devices.registry import load_registry
from devices.series import SeriesTable
from ingest.checkpoint import Checkpoints
from ingest.influx_query import InfluxQLReader
from ingest.influx_sink import make_sink
from ingest.rejections import RateLimitedLog
from ingest.settings import InfluxSettings
from ingest.snapshot import StateFile
from ingest.warmup import WarmupReport, warm_up
from ingest.writer import Writer
from pantau.devstack import InfluxDB1
from pantau.settings import Settings
from processors import Chain, ProcessorContext, build_chain
from processors.settings import ProcessorSettings

OLD = Path(__file__).with_name("data") / "processors-pre-rings.npz"
TABLE = SeriesTable.from_registry(load_registry(OLD.with_name("registry-pre-rings.yaml")))
S, FIVE_MIN = 1_000_000_000, 300_000_000_000


class NoSink:
    async def write(self, batch: TelemetryBatch) -> None: ...


def chain() -> Chain:
    return build_chain(Settings().ingest.processors,
                       ProcessorContext(TABLE, "reject", ProcessorSettings()))


def readings(t0: int, first: int, n: int) -> TelemetryBatch:
    """Every raw series every 5 minutes from step ``first``, low in its valid range and
    drifting (PM rising, gauges below their flood stages)."""
    k = np.arange(first, first + n)
    lo = np.where(np.isfinite(TABLE.vmin), TABLE.vmin, 0.0)
    span = np.where(np.isfinite(TABLE.vmax), TABLE.vmax, lo + 100.0) - lo
    value = lo[None, :] + span[None, :] * (0.08 + 0.0005 * k[:, None] + 0.0001 * np.arange(
        len(TABLE))[None, :] % 0.01)
    ts = np.repeat(t0 + k * FIVE_MIN, len(TABLE))
    return TelemetryBatch.from_arrays(ts, np.tile(np.arange(len(TABLE)), n), value.ravel())


def influx_settings(influx: InfluxDB1, db: str) -> InfluxSettings:
    return InfluxSettings(url=influx.url, database=db, username=influx.writer.username,
                          password=Secret(influx.writer.password),
                          read_username=influx.reader.username,
                          read_password=Secret(influx.reader.password))


def derived_rows(d: TelemetryBatch) -> dict[tuple[int, int], float]:
    return {(int(s), int(t)): float(v) for s, t, v in zip(d.series, d.ts_ns, d.value,
                                                          strict=True)}


def test_the_old_snapshot_is_of_this_chain_and_registry() -> None:
    # Set aside for its old keys, not for another registry or chain (the fingerprint holds).
    old = StateFile(OLD).load()
    assert old is not None and "aqi/history_value" in old and "aqi/ring_count" not in old
    assert str(old["fingerprint"]) == chain().fingerprint()


async def upgraded(influx: InfluxDB1, db: str, state_dir: Path
                   ) -> tuple[Chain, Chain, Chain, WarmupReport, int]:
    """Three hours stored by ``writer``; then a start with the old snapshot (set aside, warm
    chain) and one without (control chain), both warmed up from InfluxDB."""
    s = influx_settings(influx, db)
    t0 = (time.time_ns() - 4 * 3600 * S) // FIVE_MIN * FIVE_MIN
    writer = chain()
    out = writer.run(readings(t0, 0, 36))
    assert writer.table is not None
    async with make_sink(s, writer.table) as sink:
        await sink.write(TelemetryBatch.concat([out.batch.take(out.batch.ok), out.derived]))
    path = state_dir / "processors.npz"
    path.write_bytes(OLD.read_bytes())
    warm, control = chain(), chain()
    metrics, rlog = Metrics(), RateLimitedLog()
    checkpoints = Checkpoints(warm, Writer(NoSink(), metrics, rlog), metrics, rlog,
                              StateFile(path), 5.0)
    assert checkpoints.restore() is False  # `pantau run` then warms up without catch-up
    assert not path.exists()
    assert (state_dir / "processors.npz.stale").read_bytes() == OLD.read_bytes()
    async with InfluxQLReader(s) as reader:
        report = await warm_up(warm, reader, now_ns=time.time_ns(), max_s=86400.0)
        await warm_up(control, reader, now_ns=time.time_ns(), max_s=86400.0)
    return writer, warm, control, report, t0


async def test_an_old_snapshot_is_set_aside_and_the_warm_up_replays(
        influx: InfluxDB1, influx_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, warm, control, report, t0 = await upgraded(influx, influx_db, tmp_path)
    assert "cannot restore processor state" in caplog.text
    # every reading of the kinds whose old state was set aside (flood, aqi) is replayed
    per_kind = {k: sum(len(d.metrics) for d in TABLE.devices if d.kind == k)
                for k in ("air_quality", "river_gauge")}
    assert {k: report.per_kind[k] for k in per_kind} == {k: 36 * n for k, n in per_kind.items()}
    nxt = readings(t0, 36, 3)
    want, got, fresh = writer.run(nxt), warm.run(nxt), control.run(nxt)
    # every derived row as if there had been no snapshot ...
    assert derived_rows(got.derived) == derived_rows(fresh.derived)
    # ... and flood stages, rates of rise and air-quality indices go on as the writer's do
    assert warm.table is not None
    kind = np.array([d.kind for d in TABLE.devices])[warm.table.device_index]
    mine = {k: v for k, v in derived_rows(want.derived).items() if kind[k[0]] in per_kind}
    assert len(mine) > 100
    assert mine == pytest.approx({k: derived_rows(got.derived)[k] for k in mine}, rel=1e-9)


async def test_nothing_of_a_snapshot_set_aside_is_kept(influx: InfluxDB1, influx_db: str,
                                                       tmp_path: Path) -> None:
    _, warm, control, _, t0 = await upgraded(influx, influx_db, tmp_path)
    nxt = readings(t0, 36, 3)
    assert (warm.run(nxt).batch.flags == control.run(nxt).batch.flags).all()
