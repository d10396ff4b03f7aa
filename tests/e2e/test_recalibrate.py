"""`pantau devices recalibrate` against the real InfluxDB: points written by Pantau's sink with
the old calibration are read back as the reader, rewritten as the writer with the new one,
exactly, in place, and nothing outside the corrected period moves."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.batch import TelemetryBatch
from core.settings import Secret
from devices.registry import load_registry
from devices.series import SeriesTable
from ingest.influx_sink import InfluxV1Sink
from ingest.settings import InfluxSettings
from pantau.cli import main
from pantau.devstack import InfluxDB1

REGISTRY = """\
sites:
  - {id: kanigoro, lat: -8.13, lon: 112.21}
kinds:
  river_gauge:
    metrics:
      level_cm: {unit: cm, min: 0, max: 1500}
      battery_v: {unit: V}
devices:
  - id: wl-1
    kind: river_gauge
    site: kanigoro
    metrics:
      level_cm:
        calibration:
          - {from: 2026-01-01, gain: 1.0, offset: -12}
%s"""
OLD = REGISTRY % "          - {from: 2026-03-01, gain: 0.98, offset: -10}\n"
# the correction: a sensor swap on Feb 1 was missing, and March's offset was wrong
NEW = REGISTRY % ("          - {from: 2026-02-01, gain: 1.02, offset: -11, note: swap}\n"
                  "          - {from: 2026-03-01, gain: 0.98, offset: -9.5}\n")
OLD_F = {"jan": (1.0, -12.0), "feb": (1.0, -12.0), "mar": (0.98, -10.0)}
NEW_F = {"jan": (1.0, -12.0), "feb": (1.02, -11.0), "mar": (0.98, -9.5)}


def ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 10**6) * 1000


# (time, month of its calibration period); the command runs on [Jan 15, Mar 15)
POINTS = [(ns("2026-01-10T00:00:00+00:00"), "jan"),        # before --since
          (ns("2026-01-20T00:00:00+00:00"), "jan"),        # inside, factors unchanged
          *((ns(f"2026-02-{d:02d}T06:30:00.000123+00:00"), "feb") for d in range(1, 9)),
          (ns("2026-02-28T23:59:59.999999+00:00"), "feb"),
          (ns("2026-03-01T00:00:00+00:00"), "mar"),
          (ns("2026-03-14T23:00:00+00:00"), "mar"),
          (ns("2026-03-15T00:00:00+00:00"), "mar")]        # at --until: excluded
SINCE, UNTIL = "2026-01-15", "2026-03-15T07:00:00+07:00"
MOVED_TS = POINTS[4][0]   # the device stood at another site then: same instant, 2nd series


@pytest.fixture
def stored(influx: InfluxDB1, influx_db: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(NEW)
    ts = np.array([t for t, _ in POINTS], dtype=np.int64)
    raw = np.round(np.linspace(150.0, 420.0, len(POINTS)), 3)
    level = np.array([r * OLD_F[m][0] + OLD_F[m][1] for r, (_, m) in zip(raw, POINTS,
                                                                          strict=True)])
    table = SeriesTable.from_registry(load_registry(tmp_path / "old.yaml"))
    lv, bv = table.lookup["wl-1"]["level_cm"], table.lookup["wl-1"]["battery_v"]
    batch = TelemetryBatch.from_arrays(np.concatenate([ts, ts]),
                                       [lv] * len(ts) + [bv] * len(ts),
                                       np.concatenate([level, np.full(len(ts), 12.75)]))
    writer = InfluxSettings(url=influx.url, database=influx_db, username=influx.writer.username,
                            password=Secret(influx.writer.password))

    async def write() -> None:
        async with InfluxV1Sink(writer, table) as sink:          # Pantau's own write path
            await sink.write(batch)
    asyncio.run(write())
    influx.write([f"river_gauge,device=wl-1,site=kanigoro level_cm_q=1 {POINTS[3][0]}",
                  f"river_gauge,device=wl-1,site=lodoyo level_cm=200.5 {MOVED_TS}"],
                 db=influx_db)
    for k, v in {"URL": influx.url, "DATABASE": influx_db,
                 "USERNAME": influx.writer.username, "PASSWORD": influx.writer.password,
                 "READ_USERNAME": influx.reader.username,
                 "READ_PASSWORD": influx.reader.password}.items():
        monkeypatch.setenv(f"PANTAU_INFLUX_{k}", v)
    return {"ts": ts, "level": level, "rows": read(influx, influx_db)}


def read(influx: InfluxDB1, db: str) -> dict[tuple[int, str], dict[str, Any]]:
    rows = influx.rows("SELECT * FROM river_gauge GROUP BY *", db=db)
    return {(r["time"], r["site"]): r for r in rows}


def command(tmp_path: Path, *extra: str) -> int:
    return main(["devices", "--registry", str(tmp_path / "new.yaml"), "recalibrate", "wl-1",
                 "--since", SINCE, "--until", UNTIL, "--old-registry",
                 str(tmp_path / "old.yaml"), *extra])


def test_recalibrate_rewrites_exactly_the_period(
        influx: InfluxDB1, influx_db: str, stored: dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # page size 3: pages end inside the instant shared by two sites, and mid-period
    assert command(tmp_path, "--page-size", "3") == 0
    out = capsys.readouterr().out
    after = read(influx, influx_db)
    assert set(after) == set(stored["rows"])                     # same series, same times
    since, until = ns("2026-01-15T00:00:00+00:00"), ns("2026-03-15T00:00:00+00:00")
    changed = 0
    for (t, month), old in zip(POINTS, stored["level"], strict=True):
        row, before = after[(t, "kanigoro")], stored["rows"][(t, "kanigoro")]
        (g0, o0), (g1, o1) = OLD_F[month], NEW_F[month]
        if since <= t < until and (g0, o0) != (g1, o1):
            assert row["level_cm"] == (old - o0) / g0 * g1 + o1, t
            changed += 1
        else:
            assert row["level_cm"] == before["level_cm"], t      # outside or unchanged
        assert (row["battery_v"], row["device"]) == (12.75, "wl-1")   # other fields stay
    assert after[(POINTS[3][0], "kanigoro")]["level_cm_q"] == 1.0
    moved = after[(MOVED_TS, "lodoyo")]                          # rewritten under its own tags
    assert moved["level_cm"] == (200.5 + 12.0) / 1.0 * 1.02 - 11.0
    assert moved["battery_v"] is None
    assert changed == 11
    assert f"{changed + 1}/{changed + 1} points" in out
    assert "rewrote 12 points of wl-1 (level_cm 12)" in out
    assert "level_cm 2026-02-01T00:00:00Z .. 2026-03-01T00:00:00Z: gain 1 offset -12 -> " \
           "gain 1.02 offset -11" in out


def test_dry_run_writes_nothing(influx: InfluxDB1, influx_db: str, stored: dict[str, Any],
                                tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert command(tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert read(influx, influx_db) == stored["rows"]
    assert "would rewrite 12 points of wl-1 (level_cm 12) in 0 writes" in out
    assert "e.g. level_cm at 2026-02-01T06:30:00.000123Z:" in out


def test_the_write_only_ingest_user_cannot_read(
        influx: InfluxDB1, influx_db: str, stored: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PANTAU_INFLUX_READ_USERNAME")
    assert command(tmp_path) == 2
    err = capsys.readouterr().err
    assert "influx.read_username" in err and influx.writer.username in err
    assert read(influx, influx_db) == stored["rows"]


def test_a_period_without_points_rewrites_nothing(
        influx: InfluxDB1, influx_db: str, stored: dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--registry", str(tmp_path / "new.yaml"), "recalibrate", "wl-1",
                 "--since", "2026-03-20", "--until", "2026-03-25", "--old-registry",
                 str(tmp_path / "old.yaml")]) == 0
    assert "rewrote 0 points of wl-1 (level_cm 0) in 0 writes" in capsys.readouterr().out
    assert read(influx, influx_db) == stored["rows"]
