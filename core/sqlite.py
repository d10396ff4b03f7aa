"""Opening a store's SQLite file so that a corrupt one never stops start-up.

`open_checked` connects (creating the file and its directory when missing), runs
``PRAGMA quick_check`` and puts the connection in WAL mode (``synchronous=NORMAL``: durable at
checkpoints; a 5 s busy timeout), then hands it to the store's ``setup`` (schema, pruning,
loading), whose result it returns with the connection. A file SQLite cannot use (truncated,
garbage, a malformed page: `sqlite3.DatabaseError` from the check or from ``setup``) is set
aside with its WAL and shared-memory files as ``<name>.corrupt-<UTC time>``, a warning says
so and what is lost, and a fresh file goes through ``setup`` instead. An
`sqlite3.OperationalError` (locked, read-only, disk full) is raised as it is: the file may be
sound, so it is kept.

`Database` is what a store's class builds on: its path, its one connection once opened
(`Database.conn`), `Database.close`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
SIDE_FILES = ("", "-wal", "-shm")  # a stale WAL must never meet a fresh file


def open_checked(path: str | Path, setup: Callable[[sqlite3.Connection], T], *,
                 log: logging.Logger, lost: str,
                 check_same_thread: bool = True) -> tuple[sqlite3.Connection, T]:
    """The connection to ``path`` and what ``setup`` made of it; ``lost`` completes the
    warning "starting with an empty ..." when a corrupt file is set aside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open(path, setup, check_same_thread)
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as e:  # "file is not a database", "malformed", ...
        aside = set_aside(path)
        log.warning("%s is corrupt (%s): set aside as %s; starting with an empty %s",
                    path, e, aside, lost)
        return _open(path, setup, check_same_thread)


class Database:
    """A store's SQLite file: ``path``, and its connection once the store's ``open`` set
    ``_conn`` (`open_checked`); ``what`` names the store in the error for use before that."""

    what = "database"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"{self.path}: the {self.what} is not open")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def set_aside(path: Path) -> Path:
    """Move ``path`` (and its WAL and shared memory) to a free ``<name>.corrupt-<UTC time>``
    name next to it; return that name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in itertools.count():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}" + (f".{n}" if n else ""))
        if not any(Path(f"{aside}{s}").exists() for s in SIDE_FILES):
            break
    for suffix in SIDE_FILES:
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.replace(Path(f"{aside}{suffix}"))
    return aside


def _open(path: Path, setup: Callable[[sqlite3.Connection], T],
          check_same_thread: bool) -> tuple[sqlite3.Connection, T]:
    conn = sqlite3.connect(path, check_same_thread=check_same_thread, isolation_level=None)
    try:
        check = conn.execute("PRAGMA quick_check(1)").fetchone()
        if check is None or check[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn, setup(conn)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        raise
