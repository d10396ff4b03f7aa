"""`core.sqlite.open_checked`: a corrupt file is set aside (with its WAL) under a timestamped
name, logged, and a fresh one set up; a sound file keeps its data. Both stores use it: the
alerts store is tested here with a corrupt file too (the status store in
tests/devices/test_status_db_corrupt.py)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.store import AlertDB, Event
from core.sqlite import open_checked, set_aside

log = logging.getLogger("test.sqlite")


def setup(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT)")
    return conn.execute("SELECT k, v FROM t ORDER BY k").fetchall()


def sound(path: Path) -> bytes:
    conn, _ = open_checked(path, setup, log=log, lost="test store")
    with conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 200) for k in range(500)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.read_bytes()


def scribble(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(4096 + 100, len(out), 997):  # keep the header, damage every page
        out[i] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda d: d[:len(d) // 2], id="truncated"),
    pytest.param(lambda d: b"garbage!" * 512, id="garbage"),
    pytest.param(scribble, id="scribbled-pages"),
])
def test_a_corrupt_file_is_set_aside_logged_and_replaced(
        tmp_path: Path, damage: Callable[[bytes], bytes],
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s" / "store.sqlite"
    damaged = damage(sound(path))
    path.write_bytes(damaged)
    conn, rows = open_checked(path, setup, log=log, lost="test store")
    assert rows == []
    conn.execute("INSERT INTO t VALUES (1, 'fresh')")
    conn.close()
    [aside] = (tmp_path / "s").glob("store.sqlite.corrupt-*Z")
    assert aside.read_bytes() == damaged  # kept for inspection
    assert "is corrupt" in caplog.text and str(aside) in caplog.text and "test store" in caplog.text
    assert open_checked(path, setup, log=log, lost="")[1] == [(1, "fresh")]


def test_a_sound_file_keeps_its_data_and_nothing_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    sound(path)
    conn, rows = open_checked(path, setup, log=log, lost="test store")
    assert len(rows) == 500
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_set_aside_twice_in_one_second_keeps_both(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    names = set()
    for text in ("one", "two"):
        path.write_text(text)
        names.add(set_aside(path))
    assert len(names) == 2 and {p.read_text() for p in names} == {"one", "two"}


def test_a_corrupt_alerts_store_is_set_aside_and_rebuilt(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts.sqlite"
    db = AlertDB(path)
    db.open()
    db.write({"a1": {"id": "a1"}}, [], [Event(1, "a1", "X", "warning", "d", "s", "k",
                                               "firing", 1.0, "m")])
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    path.write_bytes(scribble(path.read_bytes()))
    db = AlertDB(path)
    assert db.open() == []
    assert db.history({}, 0, 10) == []
    db.close()
    assert list(tmp_path.glob("alerts.sqlite.corrupt-*"))
    assert "alerts store" in caplog.text
