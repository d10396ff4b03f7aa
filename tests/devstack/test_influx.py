"""InfluxDB 1.x as the project starts it: authentication on, least-privilege users,
durable across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pantau.devstack import InfluxDB1, InfluxError

LINE = "river,device=wl-1,site=kanigoro level_cm=123.5 1700000000000000000"


def test_refuses_unauthenticated_requests(influx: InfluxDB1, influx_db: str) -> None:
    with pytest.raises(InfluxError) as read:
        influx.query("SHOW DATABASES", user=None)
    assert read.value.status == 401
    with pytest.raises(InfluxError) as write:
        influx.write(LINE, db=influx_db, user=None)
    assert write.value.status == 401


def test_writer_writes_but_cannot_read(influx: InfluxDB1, influx_db: str) -> None:
    influx.write(LINE, db=influx_db)
    for q in ("SELECT * FROM river", "SHOW MEASUREMENTS", "SHOW TAG KEYS"):
        with pytest.raises(InfluxError, match="requires READ") as denied:
            influx.query(q, db=influx_db, user="writer")
        assert denied.value.status == 403
    assert influx.rows("SELECT level_cm FROM river", db=influx_db) == [
        {"time": 1700000000000000000, "level_cm": 123.5}]


def test_writer_cannot_create_or_drop(influx: InfluxDB1, influx_db: str) -> None:
    for q in ("CREATE DATABASE evil", f'DROP DATABASE "{influx_db}"', "SHOW USERS"):
        with pytest.raises(InfluxError) as denied:
            influx.query(q, user="writer")
        assert denied.value.status == 403


def test_writer_cannot_write_to_another_database(influx: InfluxDB1) -> None:
    influx.query('CREATE DATABASE "not_granted"', user="admin")
    try:
        with pytest.raises(InfluxError, match="not authorized") as denied:
            influx.write(LINE, db="not_granted")
        assert denied.value.status == 403
    finally:
        influx.drop_database("not_granted")


def test_reader_reads_but_cannot_write(influx: InfluxDB1, influx_db: str) -> None:
    influx.write(LINE, db=influx_db)
    assert influx.query("SHOW MEASUREMENTS", db=influx_db)[0]["values"] == [["river"]]
    with pytest.raises(InfluxError, match="not authorized to write") as denied:
        influx.write(LINE, db=influx_db, user="reader")
    assert denied.value.status == 403
    with pytest.raises(InfluxError):
        influx.query('DROP MEASUREMENT "river"', db=influx_db, user="reader")


def test_session_database_exists(influx: InfluxDB1) -> None:
    names = [v[0] for v in influx.query("SHOW DATABASES", user="admin")[0]["values"]]
    assert influx.database == "pantau"
    assert "pantau" in names
    assert "_internal" not in names  # monitor store disabled


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_restart_keeps_data_and_credentials(spawn: Any, tmp_path: Path, how: str) -> None:
    db = spawn(InfluxDB1(tmp_path))
    db.write(LINE)
    getattr(db, how)()
    db.start()
    assert db.rows("SELECT level_cm FROM river", db=db.database)[0]["level_cm"] == 123.5
    db.stop()
    # A new process on the same directory (new ports) reuses the saved credentials.
    again = spawn(InfluxDB1(tmp_path))
    assert (again.admin, again.writer, again.reader) == (db.admin, db.writer, db.reader)
    assert again.http_port != db.http_port or again.rpc_port != db.rpc_port
    again.write(LINE.replace("123.5", "124.0").replace("000000000", "000000001"))
    assert len(again.rows("SELECT level_cm FROM river", db=again.database)) == 2


def test_parallel_instances_do_not_clash(spawn: Any, tmp_path: Path, influx: InfluxDB1) -> None:
    other = spawn(InfluxDB1(tmp_path))
    assert {other.http_port, other.rpc_port}.isdisjoint({influx.http_port, influx.rpc_port})
    assert other.admin.password != influx.admin.password
