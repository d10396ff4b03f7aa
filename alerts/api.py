"""The alerts HTTP API: two aiohttp sub-apps the composition root mounts.

`alerts_api` at ``/api/alerts`` (reading: viewer; acknowledging: operator):

- ``GET /api/alerts?state=&severity=&device=&site=&rule=&team=``: the current alerts
  (pending, firing, and resolved ones still being re-sent), each filter one value or several
  separated by commas;
- ``GET /api/alerts/history?<same filters>&since=<RFC 3339>&limit=100``: every transition,
  acknowledgement and escalation, newest first;
- ``GET /api/alerts/{id}``: one alert;
- ``POST /api/alerts/{id}/ack`` with JSON ``{"who": "...", "comment": "..."}``: acknowledge a
  firing alert (409 when it is not firing, or already acknowledged).

`ack_links` at ``/ack``, a public sub-app (no token: the signed link is the authority,
`alerts.links`):
``GET /ack/{token}`` shows a confirmation page and changes nothing (mail scanners follow
links); only its form's ``POST /ack/{token}`` acknowledges. Forged, expired or already used
links are refused (403, 410, 409) with a page saying so.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable
from typing import Any

from aiohttp import web

from alerts.lifecycle import Alert, Book
from alerts.links import LinkError, verify
from alerts.machine import NEVER

MAX_LIMIT = 1000
FILTERS = {"state": "state", "severity": "severity", "device": "device", "site": "site",
           "rule": "alertname", "team": "team"}
Acknowledge = Callable[[Alert, str, str], None]


def iso(ns: int) -> str | None:
    if ns <= 0 or ns == NEVER:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def as_json(a: Alert) -> dict[str, Any]:
    return {"id": a.id, "labels": a.labels, "annotations": a.annotations, "state": a.state,
            "value": None if math.isnan(a.value) else a.value, "since": iso(a.since_ns),
            "fired": iso(a.fired_ns), "resolved": iso(a.resolved_ns),
            "acknowledged": {"by": a.acked_by, "at": iso(a.acked_ns),
                             "comment": a.ack_comment} if a.acked_by else None,
            "tier": a.tier}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _filters(request: web.Request) -> dict[str, set[str]]:
    out = {}
    for name, label in FILTERS.items():
        raw = request.query.get(name, "")
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if values:
            out[label] = values
    return out


def alerts_api(book: Book, acknowledge: Acknowledge) -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        f = _filters(request)
        rows = [as_json(a) for a in book.alerts.values()
                if all((a.state if k == "state" else a.labels.get(k, "")) in v
                       for k, v in f.items())]
        return web.json_response(sorted(rows, key=lambda r: r["since"] or "", reverse=True))

    async def history(request: web.Request) -> web.Response:
        f = _filters(request)
        f.pop("team", None)
        raw_limit = request.query.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            return _error(400, f"limit: {raw_limit!r} is not a whole number in [1, {MAX_LIMIT}]")
        since_ns = 0
        if "since" in request.query:
            try:
                when = dt.datetime.fromisoformat(request.query["since"].replace("Z", "+00:00"))
            except ValueError:
                return _error(400, "since: not an RFC 3339 time")
            if when.tzinfo is None:
                return _error(400, "since: give a time zone (Z or +07:00)")
            since_ns = int(when.timestamp() * 1e9)
        events = book.history(f, since_ns, int(raw_limit))
        return web.json_response([e.as_dict() | {"ts": iso(e.ts_ns)} for e in events])

    async def one(request: web.Request) -> web.Response:
        a = book.alerts.get(request.match_info["id"])
        return _error(404, "no such current alert") if a is None else web.json_response(
            as_json(a))

    async def ack(request: web.Request) -> web.Response:
        a = book.alerts.get(request.match_info["id"])
        if a is None:
            return _error(404, "no such current alert")
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, "the body must be JSON: {\"who\": ..., \"comment\": ...}")
        who, comment = str(body.get("who", "")).strip(), str(body.get("comment", "")).strip()
        if not who:
            return _error(400, "who: say who acknowledges")
        if a.state != "firing" or a.acked_by:
            return _error(409, f"alert is {a.state}" + (
                f", acknowledged by {a.acked_by}" if a.acked_by else ""))
        acknowledge(a, who[:100], comment[:500])
        return web.json_response(as_json(a))

    app = web.Application()
    app.router.add_get("", listing)
    app.router.add_get("/history", history)
    app.router.add_get("/{id}", one)
    app.router.add_post("/{id}/ack", ack)
    return app


PAGE = """<!doctype html><html lang="id"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Pantau</title></head>
<body><h1>{title}</h1><p>{body}</p>{form}</body></html>"""
FORM = """<form method="post"><p>{summary}</p>
<label>Nama / name <input name="who" id="who" required maxlength="100"></label>
<label>Catatan / comment <input name="comment" id="comment" maxlength="500"></label>
<button type="submit" id="confirm">Konfirmasi / Acknowledge</button></form>"""


def _page(status: int, title: str, body: str, form: str = "") -> web.Response:
    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        text=PAGE.format(title=html.escape(title), body=html.escape(body),
                                         form=form),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def ack_links(book: Book, key: bytes, acknowledge: Acknowledge,
              clock: Callable[[], int]) -> web.Application:
    status_of = {"malformed": 400, "forged": 403, "expired": 410}

    def check(request: web.Request) -> Alert | web.Response:
        try:
            claim = verify(key, request.match_info["token"], clock() / 1e9)
        except LinkError as e:
            return _page(status_of[e.reason], "Tautan ditolak / link refused", str(e))
        a = book.alerts.get(claim.alert_id)
        if a is None or a.state != "firing":
            return _page(409, "Tidak aktif / not active", "This alert is no longer firing.")
        if a.acked_by:
            return _page(409, "Sudah dikonfirmasi / already acknowledged",
                         f"Acknowledged by {a.acked_by}.")
        return a

    async def confirm(request: web.Request) -> web.Response:
        found = check(request)
        if isinstance(found, web.Response):
            return found
        summary = html.escape(found.annotations.get("summary", found.labels["alertname"]))
        return _page(200, "Konfirmasi peringatan / acknowledge alert",
                     found.annotations.get("summary_en", ""), FORM.format(summary=summary))

    async def acknowledge_now(request: web.Request) -> web.Response:
        found = check(request)
        if isinstance(found, web.Response):
            return found
        form = await request.post()
        who = str(form.get("who", "")).strip()[:100] or "link"
        nonce = request.match_info["token"].split(".")[2]
        if not book.db.use_link(nonce, clock()):
            return _page(409, "Tautan sudah dipakai / link already used", "")
        acknowledge(found, who, str(form.get("comment", "")).strip()[:500] or "one-click link")
        return _page(200, "Terkonfirmasi / acknowledged",
                     f"{found.labels['alertname']} acknowledged by {who}.")

    app = web.Application()
    app.router.add_get("/{token}", confirm)
    app.router.add_post("/{token}", acknowledge_now)
    return app
