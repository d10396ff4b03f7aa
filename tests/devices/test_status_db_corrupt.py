"""A corrupt ``pantau.sqlite`` never stops start-up (issue #9): whatever the damage, `open`
sets the file (and its WAL) aside as ``*.corrupt-<time>`` and starts an empty, working store;
a file that is merely unwritable is not mistaken for a corrupt one."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.status_db import StatusDB
from tests.ingest.smallfs import small_fs


def real_db(path: Path) -> bytes:
    db = StatusDB(path)
    db.open()
    db.write([("wl-1", "online", 1, "lwt", 2)], [("wl-1", "level_cm", 3, 4.5)],
             [("wl-1", ts, "online", "lwt") for ts in range(2000)])
    db.close()
    return path.read_bytes()


def flip_pages(data: bytes) -> bytes:
    out = bytearray(data)
    for i in range(4096 + 100, len(out), 997):  # leave the header, scribble over every page
        out[i] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("damage", [
    pytest.param(lambda d: d[:len(d) // 2], id="truncated-half"),
    pytest.param(lambda d: d[:100], id="truncated-header"),
    pytest.param(lambda d: b"garbage!" * 512, id="garbage"),
    pytest.param(flip_pages, id="scribbled-pages"),
])
def test_a_corrupt_file_is_set_aside_and_rebuilt(
        tmp_path: Path, damage: Callable[[bytes], bytes], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pantau.sqlite"
    damaged = damage(real_db(path))
    path.write_bytes(damaged)
    db = StatusDB(path)
    loaded = db.open()
    assert loaded.statuses == [] and loaded.values == []
    db.write([("wl-1", "offline", 5, "timeout", 6)], [], [])
    assert db.history("wl-1", 10) == []
    db.close()
    [aside] = tmp_path.glob("pantau.sqlite.corrupt-*")
    assert aside.read_bytes() == damaged  # kept for inspection
    assert "is corrupt" in caplog.text and "set aside" in caplog.text
    assert StatusDB(path).open().statuses == [("wl-1", "offline", 5, "timeout", 6)]


def test_a_sound_file_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "pantau.sqlite"
    real_db(path)
    loaded = StatusDB(path).open()
    assert loaded.values == [("wl-1", "level_cm", 3, 4.5)]
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_an_unwritable_file_is_not_set_aside(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs", 1024 * 1024) as fs:
        path = fs.path / "pantau.sqlite"
        real_db(path)
        with fs.read_only(), pytest.raises(sqlite3.OperationalError):
            StatusDB(path).open()
        assert not list(fs.path.glob("*.corrupt-*"))
