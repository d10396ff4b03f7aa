"""`AlertmanagerClient`: one Alertmanager replica's API v2, one attempt per call.

- `notify(alerts)`: ``POST /api/v2/alerts`` (the `Notifier` contract: one attempt, raises
  `NotifyError` whose ``retryable`` says whether trying again can help);
- `silence(...)`: ``POST /api/v2/silences`` (with ``id``: extends that silence; Alertmanager
  may answer with a new id, which is the one to keep);
- `expire(silence_id)`: ``DELETE /api/v2/silence/{id}``; a silence Alertmanager no longer
  knows counts as expired.

Errors: a network error, a timeout, 5xx and 429 are retryable; any other status (400: a
payload Alertmanager refuses) is not. Retry and backoff live in `alerts.delivery`, once.
Used as ``async with`` (one aiohttp session); never called concurrently for one replica.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

import aiohttp

from core.errors import PantauError


class NotifyError(PantauError):
    """One attempt failed; ``retryable`` says whether the same request may succeed later."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable, self.status = retryable, status


class Notifier(Protocol):
    """Delivers alerts (Alertmanager's API v2 payload): one attempt per call."""

    async def notify(self, alerts: Sequence[Mapping[str, Any]]) -> None: ...


def rfc3339(ns: int) -> str:
    """ns since the epoch as RFC 3339 UTC with milliseconds."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class AlertmanagerClient:
    """One replica at ``url``; ``timeout_s`` bounds each request."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            raise RuntimeError("use the client as `async with` first")
        where = f"Alertmanager {self.url}: {method} {path}"
        try:
            async with self._session.request(method, self.url + path, json=body) as resp:
                text = await resp.text(errors="replace")
                if resp.status // 100 == 2:
                    return await resp.json(content_type=None) if text.strip() else None
                retryable = resp.status >= 500 or resp.status == 429
                raise NotifyError(f"{where}: HTTP {resp.status}: {' '.join(text.split())[:300]}",
                                  retryable=retryable, status=resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise NotifyError(f"{where}: {type(e).__name__}: {e}", retryable=True) from e

    async def notify(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        if alerts:
            await self._call("POST", "/api/v2/alerts", list(alerts))

    async def silence(self, labels: Mapping[str, str], *, starts_ns: int, ends_ns: int,
                      created_by: str, comment: str, silence_id: str = "") -> str:
        """Create (or extend ``silence_id``) a silence matching exactly ``labels``; returns
        the id Alertmanager keeps it under."""
        body: dict[str, Any] = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                         for k, v in sorted(labels.items())],
            "startsAt": rfc3339(starts_ns), "endsAt": rfc3339(ends_ns),
            "createdBy": created_by or "pantau", "comment": comment or "acknowledged"}
        if silence_id:
            body["id"] = silence_id
        answer = await self._call("POST", "/api/v2/silences", body)
        return str(answer["silenceID"])

    async def expire(self, silence_id: str) -> None:
        try:
            await self._call("DELETE", f"/api/v2/silence/{silence_id}")
        except NotifyError as e:
            if "silence not found" not in str(e):
                raise
