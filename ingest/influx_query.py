"""InfluxQL reads over the 1.x ``/query`` API, for the few places Pantau reads its own data back
(`pantau devices recalibrate`, the processors' warm-up after a lost state snapshot).

Reads authenticate as ``influx.read_username`` (else ``influx.username``), so that the ingest
user can keep WRITE only. InfluxDB 2.x and 3.x answer the same API (2.x: a DBRP mapping for
the bucket and a v1 authorisation with read access, which Grafana's InfluxQL data source needs
too).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from core.errors import PantauError
from ingest.settings import InfluxSettings


class QueryError(PantauError):
    """A query failed: the message names the URL, the database, the user and the cause."""


def q_ident(name: str) -> str:
    """``name`` as a double-quoted InfluxQL identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def q_string(text: str) -> str:
    """``text`` as a single-quoted InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxQLReader:
    """InfluxQL over ``/query`` (see the module docstring); used as ``async with``."""

    def __init__(self, s: InfluxSettings) -> None:
        self._url = s.url.rstrip("/") + "/query"
        user, pw = (s.read_username, s.read_password) if s.read_username else (s.username,
                                                                              s.password)
        self._headers = {"Authorization": aiohttp.encode_basic_auth(user, pw.reveal())
                         } if user else {}
        self._form = {"db": s.database, "epoch": "ns"}
        self.where = f"InfluxDB {s.url} database {s.database!r} as {user or 'anonymous'!r}"
        self._timeout = aiohttp.ClientTimeout(total=max(s.timeout_s, 60.0))
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> InfluxQLReader:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def series(self, q: str) -> list[dict[str, Any]]:
        """Every series of the answer: ``{"name", "columns", "values", "tags"?}``."""
        assert self._session is not None, "use `async with`"
        try:
            async with self._session.post(self._url, data={**self._form, "q": q}) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise QueryError(f"{self.where}: {type(e).__name__}: {e}") from e
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {"error": text.strip()[:300]}
        errors = [doc["error"]] if "error" in doc else []
        errors += [r["error"] for r in doc.get("results", []) if "error" in r]
        if status in (401, 403):
            errors.append("set influx.read_username/read_password to a user with READ on "
                          "the database (the ingest user normally has WRITE only)")
        if status != 200 or errors:
            raise QueryError(f"{self.where}: HTTP {status}: {'; '.join(errors)}")
        return [s for r in doc.get("results", []) for s in r.get("series", [])]
