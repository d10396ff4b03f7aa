"""Faults of the machine (issue #9), end to end against the real Mosquitto and InfluxDB.

The dead-letter file lives on a small filesystem (`tests.ingest.smallfs`: a size-limited
tmpfs as root) that is filled, then remounted read-only, under a running Pantau: readiness
turns red naming the dead-letter file, the failures are counted, nothing is acknowledged that
was not written, no torn line is left, and once there is room again every rejected message is
dead-lettered exactly once and everything is acknowledged.

A corrupt ``pantau.sqlite`` and ``processors.npz`` (truncated, garbage) never stop start-up:
they are set aside and Pantau ingests as usual.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pantau.devstack import InfluxDB1
from tests.e2e.conftest import EnvFactory, reached, run_pantau, scrape, wait_for
from tests.e2e.test_hostile import levels, valid
from tests.ingest.smallfs import small_fs

GAUGE = "pantau/kanigoro/wl-brantas-kanigoro/telemetry"
ACKED = "pantau_messages_acked_total"


async def _get(env: dict[str, str], path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(
            f"http://{env['PANTAU_HTTP_LISTEN']}{path}") as r:
        return r.status, await r.text()


async def test_full_and_read_only_dead_letter_disk(
        pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str, mqtt_client: Any,
        tmp_path: Path) -> None:
    dev = mqtt_client("wl-brantas-kanigoro")
    t0_ms = (int(time.time()) - 600) * 1000
    with small_fs(tmp_path / "dl", 512 * 1024) as fs:
        dl = fs.path / "deadletter.jsonl"
        env = pantau_env(influx_db, PANTAU_INGEST_DEADLETTER_FILE=str(dl))
        async with run_pantau(env):
            dev.publish(GAUGE, b"not json " + b"a" * 9000)  # a record bigger than a page
            await wait_for(lambda: dl.exists() and dl.stat().st_size > 0, what="a dead letter")
            sent = 1
            for fault in (fs.full, fs.read_only):
                before = dl.read_bytes()
                # every message so far acknowledged (a dead letter is on disk before its
                # message is), so what the fault holds back is its own
                await wait_for(lambda n=2 * sent - 1: reached(env, ACKED, n),
                               what=f"the {2 * sent - 1} messages so far acknowledged")
                m = await scrape(env)
                acked, errors = m[ACKED], m.get("pantau_deadletter_write_errors_total", 0)
                with fault():
                    dev.publish(GAUGE, b"still not json %d " % sent + b"b" * 9000)
                    dev.publish(GAUGE, valid(t0_ms + sent, sent))
                    sent += 1

                    async def red() -> bool:
                        status, body = await _get(env, "/readyz")
                        return status == 503 and "dead-letter" in body
                    await wait_for(red, 60, "/readyz red for the dead-letter file")
                    status, body = await _get(env, "/readyz")
                    m = await scrape(env)
                    assert status == 503, body
                    reason = json.loads(body)["checks"]["deadletter"]
                    print(f"{fault.__name__} ({'tmpfs' if fs.mounted else 'unwritable'}): "
                          f"/readyz 503, deadletter: {reason}")
                    assert reason.startswith("cannot write the dead-letter file")
                    assert m["pantau_deadletter_write_errors_total"] > errors
                    assert m[ACKED] == acked
                    assert m["pantau_messages_unacked"] >= 1
                    assert dl.read_bytes() == before  # no torn line
                # room again: written once, acknowledged, ready
                await wait_for(lambda n=sent: len(dl.read_bytes().splitlines()) == n,
                               what="the held-back dead letter")
                status, body = await _get(env, "/readyz")
                assert status == 200, body
            await wait_for(lambda: len(levels(influx, influx_db)) == sent - 1,
                           what="the valid readings held behind the dead letters")
            await wait_for(lambda: reached(env, ACKED, 2 * sent - 1),
                           what="every message acknowledged")
            assert (await scrape(env))["pantau_messages_unacked"] == 0
        payloads = [json.loads(line)["payload"][:18] for line in dl.read_bytes().splitlines()]
    assert payloads == ["not json " + "a" * 9, "still not json 1 b", "still not json 2 b"]


def _truncated_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (x TEXT)")
    conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 200)
    conn.commit()
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
async def test_corrupt_state_files_never_stop_start_up(
        damage: str, pantau_env: EnvFactory, influx: InfluxDB1, influx_db: str,
        mqtt_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    env = pantau_env(influx_db, PANTAU_STATE_DIR=str(state))
    dev = mqtt_client("wl-brantas-kanigoro")
    t0_ms = (int(time.time()) - 600) * 1000
    async with run_pantau(env):  # a first run leaves real files behind
        dev.publish(GAUGE, valid(t0_ms, 0))
        await wait_for(lambda: len(levels(influx, influx_db)) == 1, what="the first reading")
    db, snapshot = state / "pantau.sqlite", state / "processors.npz"
    assert db.exists() and snapshot.exists()
    if damage == "truncated":
        _truncated_sqlite(db)
        snapshot.write_bytes(snapshot.read_bytes()[:1000])
    else:
        db.write_bytes(b"\x00garbage" * 4096)
        snapshot.write_bytes(b"PK\x03\x04" + b"\xff" * 5000)
    for wal in state.glob("pantau.sqlite-*"):
        wal.unlink()
    with caplog.at_level(logging.WARNING):
        async with run_pantau(env):
            dev.publish(GAUGE, valid(t0_ms + 1, 1))
            await wait_for(lambda: len(levels(influx, influx_db)) == 2,
                           what="the second reading")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pantau.sqlite is corrupt" in w for w in warnings), warnings
    assert any("cannot restore processor state" in w and "rebuilt" in w for w in warnings)
    assert list(state.glob("pantau.sqlite.corrupt-*")), sorted(p.name for p in state.iterdir())
    assert (state / "processors.npz.stale").exists()
    assert sqlite3.connect(db).execute("PRAGMA quick_check").fetchone() == ("ok",)
