"""Debian's InfluxDB 1.x (`influxd`) as a child process, with authentication and three users.

On the first start in a work directory it creates an admin, the database (default
``pantau``), a writer with ``GRANT WRITE`` on it and a reader with ``GRANT READ`` on it, all
with random passwords kept in ``<workdir>/credentials.json`` so that a restart (or a later
run on the same directory) reuses them. Every directory and both listeners (HTTP and the
backup/restore RPC port, which defaults to 127.0.0.1:8088 and would clash between parallel
instances) are private to the instance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from devices.credentials import new_password
from devices.provision import write_atomic
from pantau.devstack._http import Response, request
from pantau.devstack._process import Daemon, DevstackError, free_port, writable_dir
from pantau.devstack.packages import binary

Role = Literal["admin", "writer", "reader"]


@dataclass(frozen=True, slots=True)
class InfluxUser:
    username: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


class InfluxError(DevstackError):
    """A query or write the helper made was refused; ``status`` is the HTTP status."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class InfluxDB1(Daemon):
    """InfluxDB 1.x on ``127.0.0.1`` (free ports by default) in ``workdir``."""

    name = "influxd"

    def __init__(self, workdir: str | Path, *, database: str = "pantau",
                 http_port: int | None = None, rpc_port: int | None = None) -> None:
        super().__init__(workdir)
        self.http_port = http_port or free_port()
        self.rpc_port = rpc_port or free_port()
        self.conf_path = self.workdir / "influxdb.conf"
        creds_path = self.workdir / "credentials.json"
        if creds_path.exists():
            saved = json.loads(creds_path.read_text())
            self.database: str = saved["database"]
            self.admin, self.writer, self.reader = (InfluxUser(**saved[r])
                                                    for r in ("admin", "writer", "reader"))
        else:
            self.database = database
            self.admin, self.writer, self.reader = (InfluxUser(f"pantau_{r}", new_password())
                                                    for r in ("admin", "writer", "reader"))
            write_atomic(creds_path, json.dumps({"database": database, **{
                r: asdict(u) for r, u in self.users().items()}}, indent=2))  # 0600 from birth

    def users(self) -> dict[Role, InfluxUser]:
        return {"admin": self.admin, "writer": self.writer, "reader": self.reader}

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<http_port>``."""
        return f"http://{self.host}:{self.http_port}"

    def _prepare(self) -> list[str]:
        dirs = {d: writable_dir(self.workdir / d) for d in ("meta", "data", "wal")}
        self.conf_path.write_text(f"""\
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{dirs['meta']}"

[data]
  dir = "{dirs['data']}"
  wal-dir = "{dirs['wal']}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{self.host}:{self.http_port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false
  bind-socket = "{self.workdir / 'influxd.sock'}"
""")
        return [binary("influxd"), "-config", str(self.conf_path)]

    def _ready(self) -> bool:
        try:
            return request("GET", f"{self.url}/ping", timeout=1.0).status == 204
        except OSError:
            return False

    def _after_start(self) -> None:
        # Without any user, InfluxDB 1.x accepts exactly this unauthenticated statement.
        probe = self._query("SHOW USERS", user="admin")
        if probe.status == 403 and b"create admin user first" in probe.body:
            a = self.admin
            resp = self._query(f"CREATE USER {a.username} WITH PASSWORD '{a.password}' "
                               "WITH ALL PRIVILEGES", user=None)
            if resp.status != 200 or b'"error"' in resp.body:
                raise InfluxError(f"cannot create the admin user on {self.url}: {resp.status} "
                                  f"{resp.text}", status=resp.status)
        elif probe.status != 200:
            raise InfluxError(f"{self.url} refuses this instance's admin (users from another "
                              f"credentials.json?): {probe.status} {probe.text}",
                              status=probe.status)
        for role in ("writer", "reader"):
            u = self.users()[role]
            self.query(f"CREATE USER {u.username} WITH PASSWORD '{u.password}'", db="",
                       user="admin")
        self.create_database(self.database)
        self.create_tiers(self.database)

    # -- helpers ----------------------------------------------------------------------------
    def create_database(self, name: str) -> str:
        """Create ``name`` (idempotent), grant the writer WRITE and the reader READ on it."""
        for q in (f'CREATE DATABASE "{name}"',
                  f'GRANT WRITE ON "{name}" TO {self.writer.username}',
                  f'GRANT READ ON "{name}" TO {self.reader.username}'):
            self.query(q, db="", user="admin")
        return name

    def create_tiers(self, name: str, tiers: tuple[str, ...] = ("tier_1m", "tier_1h")) -> None:
        """Create the retention policies Pantau writes its downsampled tiers to (idempotent;
        kept forever here: a deployment chooses durations, e.g. raw 90 d, 1 min 2 y)."""
        for rp in tiers:
            self.query(f'CREATE RETENTION POLICY "{rp}" ON "{name}" DURATION INF REPLICATION 1',
                       db="", user="admin")

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"', db="", user="admin")

    def _query(self, q: str, *, db: str | None = None, user: Role | None = "reader") -> Response:
        params = {"q": q, "epoch": "ns", **({"db": db} if db else {})}
        return request("POST", f"{self.url}/query", data=urlencode(params).encode(),
                       auth=self.users()[user].auth if user else None,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})

    def query(self, q: str, *, db: str | None = None,
              user: Role | None = "reader") -> list[dict[str, Any]]:
        """Run InfluxQL on ``db`` (default: `database`; "" for none) as ``user`` ("admin",
        "writer", "reader"; None: unauthenticated) and return every statement's series
        (``{"name", "columns", "values", "tags"?}``; times as epoch ns). Raises `InfluxError`
        on an HTTP error or a statement error."""
        resp = self._query(q, db=self.database if db is None else db, user=user)
        doc: dict[str, Any] = {}
        if resp.body.strip().startswith(b"{"):
            doc = json.loads(resp.body)
        errors = [doc["error"]] if "error" in doc else []
        errors += [r["error"] for r in doc.get("results", []) if "error" in r]
        if resp.status != 200 or errors:
            raise InfluxError(f"{q!r} as {user}: HTTP {resp.status}: "
                              f"{'; '.join(errors) or resp.text}", status=resp.status)
        return [s for r in doc.get("results", []) for s in r.get("series", [])]

    def rows(self, q: str, *, db: str | None = None,
             user: Role | None = "reader") -> list[dict[str, Any]]:
        """Like `query` but one ``{column: value}`` dict per row (with the series' tags)."""
        return [{**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))}
                for s in self.query(q, db=db, user=user) for v in s["values"]]

    def write(self, lines: str | list[str], *, db: str | None = None,
              user: Role | None = "writer", precision: str = "ns") -> None:
        """Write line protocol to ``db`` (default: `database`) as ``user``; `InfluxError`
        unless the server answers 204."""
        body = lines if isinstance(lines, str) else "\n".join(lines)
        params = urlencode({"db": db or self.database, "precision": precision})
        resp = request("POST", f"{self.url}/write?{params}", data=body.encode(),
                       auth=self.users()[user].auth if user else None)
        if resp.status != 204:
            raise InfluxError(f"write to {db or self.database} as {user}: HTTP {resp.status}: "
                              f"{resp.text.strip()}", status=resp.status)
