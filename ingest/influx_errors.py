"""How an InfluxDB answer becomes a `SinkError`, for both sinks (`ingest.influx_sink`) and any
other writer of Pantau's: one attempt, and whether the caller should retry.

Every failure is a `SinkError` whose ``message`` names the URL and the database or
bucket, ``status`` is the HTTP status (None without a response) and ``retryable`` says which
of two things the caller should do:

===================================  =========  ===========================================
what happened                        retryable  meaning
===================================  =========  ===========================================
network error, timeout, 5xx, 429     yes        try the same batch later (honour
                                                ``retry_after``, from ``Retry-After`` seconds)
401, 403, 404, any other status      yes        configuration (credentials, missing database
                                                or bucket): the data is fine and stays
                                                unacknowledged in the broker until an
                                                operator fixes it; the message says what
400, 413, 422                        no         the data was refused (field type conflict,
                                                partial write, body too large): split the
                                                batch to isolate the bad readings
a non-finite OK value                no         ``status`` None: a broken invariant upstream
===================================  =========  ===========================================

So ``retryable=False`` means exactly "bad data" and ``True`` means "retry later".
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ingest.errors import SinkError

BAD_DATA = frozenset({400, 413, 422})
_CONFIG = {401: "authentication failed", 403: "not allowed", 404: "not found"}


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds (the delta-seconds form; an HTTP date is ignored)."""
    value = (headers or {}).get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def http_error(status: int, detail: str, headers: Mapping[str, str] | None,
               where: str, fix: str) -> SinkError:
    """Map an HTTP error answer to a `SinkError` (see the module docstring)."""
    detail = " ".join(detail.split())[:300] or "no detail"
    if status in BAD_DATA:
        return SinkError(f"{where} refused the data: HTTP {status}: {detail}",
                         retryable=False, status=status)
    if status in _CONFIG:
        return SinkError(f"{where}: HTTP {status} {_CONFIG[status]}: {detail}; {fix} (readings "
                         "stay unacknowledged in the broker until then)",
                         retryable=True, status=status, retry_after=retry_after_s(headers))
    return SinkError(f"{where}: HTTP {status}: {detail}", retryable=True, status=status,
                     retry_after=retry_after_s(headers))


def transport_error(e: BaseException, where: str) -> SinkError:
    kind = "timed out" if isinstance(e, TimeoutError) else "unreachable"
    return SinkError(f"{where} {kind}: {type(e).__name__}: {e}", retryable=True)


def json_error(text: str) -> str:
    """InfluxDB 1.x answers ``{"error": "..."}``; keep the text otherwise."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    return str(doc.get("error", text)) if isinstance(doc, dict) else text
