"""The warm-up against the real InfluxDB: a chain rebuilt from the stored readings continues
exactly like the chain that wrote them; a stage latched before the window is seeded from the
stored ``flood_stage``; after a restored snapshot only the readings since are replayed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.settings import Secret
from devices.registry import parse_registry
from devices.series import SeriesTable
from ingest.influx_query import InfluxQLReader, QueryError
from ingest.influx_sink import make_sink
from ingest.settings import InfluxSettings
from ingest.snapshot import StateFile
from ingest.warmup import warm_up
from pantau.app import load_configured_registry, run
from pantau.config import load_settings
from pantau.devstack import InfluxDB1, free_port
from pantau.faults.proxy import FaultProxy
from processors import Chain, ProcessorContext, build_chain
from processors.settings import ProcessorSettings

S, MIN = 1_000_000_000, 60_000_000_000
CHAIN = ("calibration", "range_check", "dedupe", "quality", "flood", "aqi", "anomaly", "tiers",
         "windows")
REGISTRY = parse_registry({
    "sites": [{"id": "s", "lat": -8.1, "lon": 112.2}],
    "kinds": {"river_gauge": {"interval_s": 60}, "air_quality": {"interval_s": 60}},
    "devices": [
        *({"id": f"wl-{k}", "kind": "river_gauge", "site": "s",
           "params": {"waspada_cm": 100, "siaga_cm": 200, "awas_cm": 300, "hysteresis_cm": 30},
           "metrics": {"level_cm": {"unit": "cm"}, "battery_v": {"unit": "V"}}}
          for k in range(3)),
        {"id": "aq-1", "kind": "air_quality", "site": "s",
         "metrics": {"pm25": {"unit": "ug/m3"}, "pm10": {"unit": "ug/m3"}}},
    ],
})
TABLE = SeriesTable.from_registry(REGISTRY)
SETTINGS = ProcessorSettings(anomaly_warmup=3, anomaly_metrics=())


def chain() -> Chain:
    return build_chain(CHAIN, ProcessorContext(TABLE, settings=SETTINGS))


def minutes(t0: int, first: int, n: int) -> TelemetryBatch:
    """n minutes of every series from minute ``first``: the gauges rise through Siaga (each a
    little apart), battery drifts, PM rises; every device at the same instants."""
    m = np.arange(first, first + n)
    cols = []
    for sid in range(len(TABLE)):
        dev, metric = TABLE.key(sid)
        k = int(dev[-1]) if dev.startswith("wl-") else 0
        value = {"level_cm": 80.0 + 4.0 * m + k, "battery_v": 12.0 - m / 1000,
                 "pm25": 10.0 + m / 3, "pm10": 30.0 + m / 2}[metric]
        cols.append((t0 + m * MIN, np.full(n, sid), value))
    return TelemetryBatch.from_arrays(*(np.concatenate(c) for c in zip(*cols, strict=True)))


def settings(influx: InfluxDB1, db: str, *, reader: bool = True) -> InfluxSettings:
    user = influx.reader if reader else influx.writer
    return InfluxSettings(url=influx.url, database=db, username=influx.writer.username,
                          password=Secret(influx.writer.password),
                          read_username=user.username, read_password=Secret(user.password))


async def store(s: InfluxSettings, c: Chain, batch: TelemetryBatch) -> TelemetryBatch:
    """Run ``batch`` through ``c`` and write readings + derived rows, as the pipeline does."""
    out = c.run(batch)
    assert c.table is not None
    async with make_sink(s, c.table) as sink:
        await sink.write(TelemetryBatch.concat([out.batch.take(out.batch.ok), out.derived]))
    return out.derived


def derived_rows(d: TelemetryBatch) -> dict[tuple[int, int], float]:
    return {(int(s), int(t)): float(v) for s, t, v in zip(d.series, d.ts_ns, d.value,
                                                          strict=True)}


async def test_a_chain_warmed_from_influxdb_continues_like_the_one_that_wrote(
        influx: InfluxDB1, influx_db: str) -> None:
    t0 = (time.time_ns() - 2 * 3600 * S) // MIN * MIN
    s = settings(influx, influx_db)
    writer = chain()
    await store(s, writer, minutes(t0, 0, 90))
    warm = chain()
    async with InfluxQLReader(s) as reader:
        # pages of 7 rows: every page edge falls among rows sharing one instant
        report = await warm_up(warm, reader, now_ns=time.time_ns(), max_s=86400.0,
                               page_size=7)
    assert report.readings == 90 * len(TABLE)
    nxt = minutes(t0, 90, 5)
    before = writer.counts()
    want, got = writer.run(nxt), warm.run(nxt)
    assert derived_rows(want.derived).keys() == derived_rows(got.derived).keys()
    for key, value in derived_rows(want.derived).items():
        assert derived_rows(got.derived)[key] == pytest.approx(value, rel=1e-9), key
    assert (want.batch.flags == got.batch.flags).all()
    # what the replay found (flags, incomplete averages) is not counted again
    assert warm.counts() == {k: n - before[k] for k, n in writer.counts().items()}


async def test_a_stage_latched_before_the_window_is_seeded(influx: InfluxDB1,
                                                           influx_db: str) -> None:
    # Two days ago the gauges went through Siaga; the replay window (6 h here) holds none of
    # it. The level since sits in the band under Siaga (200 - 30 < level < 200).
    old = (time.time_ns() - 2 * 86400 * S) // MIN * MIN
    s = settings(influx, influx_db)
    await store(s, chain(), minutes(old, 0, 60))
    warm, fresh = chain(), chain()
    async with InfluxQLReader(s) as reader:
        report = await warm_up(warm, reader, now_ns=time.time_ns(), max_s=6 * 3600.0)
    assert report.seeded == {"flood_stage": 3} and report.readings == 0
    now = time.time_ns() // MIN * MIN
    band = TelemetryBatch.from_arrays([now] * 3, [TABLE.lookup[f"wl-{k}"]["level_cm"]
                                                  for k in range(3)], [185.0] * 3)
    assert warm.table is not None
    stage = warm.table.derived[("flood_stage", False)]
    # Two days ago the levels ended at 316-318 cm: Awas (stored flood_stage 3). 185 cm leaves
    # Awas (below 300 - 30) while Siaga holds by its hysteresis (above 200 - 30): stage 2
    # after the seed; a fresh chain says Normal (Waspada needs 5 minutes first).
    for c, want in ((warm, 2.0), (fresh, 0.0)):
        d = c.run(band).derived
        assert d.value[np.isin(d.series, stage)].tolist() == [want] * 3


async def test_after_a_snapshot_only_the_readings_since_are_replayed(
        influx: InfluxDB1, influx_db: str) -> None:
    t0 = (time.time_ns() - 3600 * S) // MIN * MIN
    s = settings(influx, influx_db)
    writer = chain()
    await store(s, writer, minutes(t0, 0, 30))
    snapshot = {k: np.array(v, copy=True) for k, v in writer.state().items()}
    await store(s, writer, minutes(t0, 30, 5))  # stored and acknowledged, then kill -9
    warm = chain()
    warm.restore(snapshot)
    async with InfluxQLReader(s) as reader:
        report = await warm_up(warm, reader, now_ns=time.time_ns(), max_s=86400.0,
                               catch_up=True)
    # from minute 29, the latest the snapshot saw: that minute is skipped, 30-34 replayed
    assert report.readings == 6 * len(TABLE)
    nxt = minutes(t0, 35, 3)
    assert derived_rows(writer.run(nxt).derived) == pytest.approx(
        derived_rows(warm.run(nxt).derived))


async def test_a_reader_without_read_access_is_a_clear_error(influx: InfluxDB1,
                                                             influx_db: str) -> None:
    s = settings(influx, influx_db, reader=False)  # the ingest user: WRITE only
    async with InfluxQLReader(s) as reader:
        with pytest.raises(QueryError, match="read_username"):
            await warm_up(chain(), reader, now_ns=time.time_ns(), max_s=3600.0)


def test_stored_values_that_are_not_numbers_are_skipped() -> None:
    # e.g. a field another writer stored as a string: the e2e refusal test leaves one
    from ingest.warmup import _floats
    got = _floats([(1.5, None, "dead"), (2, 3.0, 4.0)])
    assert got.shape == (3, 2) and np.isnan(got[1:, 0]).all()
    assert got[0].tolist() == [1.5, 2.0] and got[1:, 1].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("snapshot", [pytest.param(False, id="no-snapshot"),
                                      pytest.param(True, id="catching-up")])
async def test_a_stop_during_the_warm_up_cancels_it_and_saves_no_state(
        influx: InfluxDB1, influx_db: str, tmp_path: Path, snapshot: bool) -> None:
    # The real InfluxDB behind the fault suite's proxy, whose /query answers in 8 s (the
    # test waits for that handler when it closes the proxy).
    proxy = FaultProxy(influx.url, "127.0.0.1", free_port())
    await proxy.start()
    proxy.slow(8.0, paths=("/query",))
    state = tmp_path / "state"
    env = {"PANTAU_INFLUX_URL": proxy.url, "PANTAU_INFLUX_DATABASE": influx_db,
           "PANTAU_INFLUX_USERNAME": influx.writer.username,
           "PANTAU_INFLUX_PASSWORD": influx.writer.password,
           "PANTAU_INFLUX_READ_USERNAME": influx.reader.username,
           "PANTAU_INFLUX_READ_PASSWORD": influx.reader.password,
           "PANTAU_MQTT_URL": "mqtt://127.0.0.1:1", "PANTAU_STATE_DIR": str(state),
           "PANTAU_HTTP_LISTEN": f"127.0.0.1:{free_port()}", "PANTAU_ALERTS_RULES": "none"}
    ps = load_settings(None, env=env)
    snap = state / "processors.npz"
    if snapshot:  # a snapshot of the very chain `run` builds: restored, then the catch-up
        table = SeriesTable.from_registry(load_configured_registry(ps))
        state.mkdir()
        StateFile(snap).save(build_chain(ps.ingest.processors, ProcessorContext(
            table, ps.ingest.range_mode, ps.processors)).state())
    before = snap.read_bytes() if snapshot else b""
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(run(ps, stop=stop))
        while not proxy.arrived and not task.done():  # noqa: ASYNC110 - the proxy sets no event
            await asyncio.sleep(0.02)
        assert [a.path for a in proxy.arrived] == ["/query"]  # the warm-up is waiting
        stop.set()
        await asyncio.wait_for(task, 30)  # a bound against a hang
        answered = [a.path for a in proxy.seen]
    finally:
        await proxy.close()  # waits for the slow query's handler
    assert answered == []  # cancelled, not waited for
    # Half-replayed state is never saved: the snapshot is as it was (or still absent), so
    # the next start warms up again; nothing was read from the broker.
    assert (snap.read_bytes() if snapshot else snap.exists()) == (before or False)
