"""The devices HTTP API: an aiohttp sub-app that the composition root mounts at ``/api/devices``.

- ``GET /api/devices?kind=&site=&status=``: ``[{"id", "kind", "site", "lat", "lon", "name",
  "interval_s", "status", "last_seen", "battery_v", "metrics": [{"name", "unit"}]}]``;
  each filter takes one value or several separated by commas; an unknown value is a 400.
- ``GET /api/devices/{id}``: the same fields plus ``status_since``, ``status_cause``,
  ``owner``, ``contact``, ``tags``, ``params``, each metric's ``calibration`` periods and
  ``values`` (``{metric: {"value", "unit", "ts"}}``, the newest stored reading per metric).
- ``GET /api/devices/{id}/history?limit=100``: status transitions, newest first:
  ``[{"ts", "status", "cause"}]`` (cause: ``lwt``, ``timeout`` or ``telemetry``).

Times are RFC 3339 UTC strings with milliseconds (``null`` when never). Errors are JSON
``{"error": "..."}``: 404 for an unknown device, 400 for a bad parameter: an unknown or
repeated query parameter (a misspelt filter would otherwise silently match everything), a
filter value not in the registry, a ``limit`` that is not 1-1000 in ASCII digits. Status comes from
`devices.status.StatusStore` (in memory; history from its SQLite file). Who may call these
routes is not this module's business: the app that mounts it checks the caller's role.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from devices.registry import Device, Registry
from devices.status import STATUSES, DeviceState, StatusStore

PREFIX = "/api/devices"
MAX_HISTORY = 1000
LIMIT_RE = re.compile(r"[0-9]{1,4}")  # ASCII only: str.isdigit() also accepts '²' and '٣'


def iso(ns: int | None) -> str | None:
    """RFC 3339 UTC with milliseconds, or None."""
    if ns is None:
        return None
    secs, ms = divmod(ns // 1_000_000, 1000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _summary(d: Device, st: DeviceState) -> dict[str, Any]:
    battery = st.values.get("battery_v")
    return {"id": d.id, "kind": d.kind, "site": d.site, "lat": d.lat, "lon": d.lon,
            "name": d.name, "interval_s": d.interval_s, "status": st.status,
            "last_seen": iso(st.last_seen_ns), "battery_v": battery[0] if battery else None,
            "metrics": [{"name": m.name, "unit": m.unit} for m in d.metrics]}


def _detail(d: Device, st: DeviceState) -> dict[str, Any]:
    units = {m.name: m.unit for m in d.metrics}
    body = _summary(d, st)
    body.update({
        "status_since": iso(st.since_ns), "status_cause": st.cause or None,
        "owner": d.owner, "contact": d.contact, "tags": dict(d.tags), "params": dict(d.params),
        "metrics": [{"name": m.name, "unit": m.unit, "min": _finite(m.min), "max": _finite(m.max),
                     "gain": m.gain, "offset": m.offset,
                     "calibration": [{"from": iso(p.start_ns), "gain": p.gain,
                                      "offset": p.offset, "note": p.note}
                                     for p in m.calibration]} for m in d.metrics],
        "values": {name: {"value": v, "unit": units.get(name, ""), "ts": iso(ts)}
                   for name, (v, ts) in sorted(st.values.items())},
    })
    return body


def _finite(x: float) -> float | None:
    return x if abs(x) != float("inf") else None


def _unexpected(request: web.Request, names: tuple[str, ...]) -> web.Response | None:
    """A 400 for a query parameter not in ``names`` or given twice, else None."""
    for key in request.query:
        if key not in names:
            expected = ", ".join(names) or "none"
            return _error(400, f"unknown query parameter {key!r}; expected: {expected}")
        if len(request.query.getall(key)) > 1:
            return _error(400, f"query parameter {key!r} given more than once")
    return None


def _filters(query: Mapping[str, str], allowed: Mapping[str, set[str]]
             ) -> dict[str, set[str]] | str:
    """Filter name -> accepted values, or the error message for a bad value."""
    out: dict[str, set[str]] = {}
    for name, known in allowed.items():
        raw = query.get(name, "").strip()
        if not raw:
            continue
        values = {v.strip() for v in raw.split(",") if v.strip()}
        bad = sorted(values - known)
        if bad:
            return (f"filter '{name}': {bad[0]!r} is not one of "
                    f"{', '.join(sorted(known))}")
        out[name] = values
    return out


def devices_api(registry: Registry, status: StatusStore) -> web.Application:
    """The sub-app serving the routes above, for mounting at `PREFIX` (its routes are
    relative to it). Read-only today: every route is a GET."""
    allowed = {"kind": {d.kind for d in registry.devices},
               "site": {s.id for s in registry.sites} | {d.site for d in registry.devices},
               "status": set(STATUSES)}

    def lookup(request: web.Request, params: tuple[str, ...] = ()
               ) -> tuple[Device, DeviceState] | web.Response:
        bad = _unexpected(request, params)
        if bad is not None:
            return bad
        device_id = request.match_info["id"]
        d, st = registry.device(device_id), status.state(device_id)
        if d is None or st is None:
            return _error(404, f"device {device_id!r} is not in the registry")
        return d, st

    async def devices(request: web.Request) -> web.Response:
        bad = _unexpected(request, tuple(allowed))
        if bad is not None:
            return bad
        filters = _filters(request.query, allowed)
        if isinstance(filters, str):
            return _error(400, filters)
        rows = []
        for d in registry.devices:
            st = status.state(d.id)
            if st is None:
                continue
            fields = {"kind": d.kind, "site": d.site, "status": st.status}
            if all(fields[k] in v for k, v in filters.items()):
                rows.append(_summary(d, st))
        return web.json_response(rows)

    async def device(request: web.Request) -> web.Response:
        found = lookup(request)
        return found if isinstance(found, web.Response) else web.json_response(_detail(*found))

    async def history(request: web.Request) -> web.Response:
        found = lookup(request, ("limit",))
        if isinstance(found, web.Response):
            return found
        raw = request.query.get("limit", "100")
        if not LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_HISTORY:
            return _error(400, f"limit: {raw!r} is not a whole number in [1, {MAX_HISTORY}]")
        rows = await status.history(found[0].id, int(raw))
        return web.json_response([{"ts": iso(t.ts_ns), "status": t.status, "cause": t.cause}
                                  for t in rows])

    app = web.Application()
    app.router.add_get("", devices)
    app.router.add_get("/{id}", device)
    app.router.add_get("/{id}/history", history)
    return app
