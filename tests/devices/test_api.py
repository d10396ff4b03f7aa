"""The devices API (`devices.api`) mounted at its prefix, over aiohttp's test client: list,
filters, one device, history, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.batch import TelemetryBatch
from core.stored import Stored
from devices.api import PREFIX, devices_api, iso
from devices.registry import parse_registry
from devices.series import SeriesTable
from devices.status import StatusStore

S = 1_000_000_000
T0 = 1_800_000_000 * S
REGISTRY = parse_registry({
    "sites": [{"id": "kanigoro", "lat": -8.13, "lon": 112.21},
              {"id": "wlingi", "lat": -8.08, "lon": 112.33}],
    "kinds": {"river_gauge": {"interval_s": 60, "metrics": {"level_cm": {"unit": "cm"},
                                                            "battery_v": {"unit": "V"}}},
              "rain_gauge": {"interval_s": 300, "metrics": {"rain_mm": {"unit": "mm"}}}},
    "devices": [
        {"id": "wl-1", "kind": "river_gauge", "site": "kanigoro", "name": "Brantas",
         "owner": "BPBD", "contact": "ops@example.org", "river": "brantas",
         "metrics": {"level_cm": {"calibration": [{"from": "2026-01-01", "gain": 2.0}]}}},
        {"id": "wl-2", "kind": "river_gauge", "site": "wlingi"},
        {"id": "rg-1", "kind": "rain_gauge", "site": "wlingi"},
    ],
})
TABLE = SeriesTable.from_registry(REGISTRY)


class Clock:
    now = T0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], StatusStore, Clock]]:
    clock = Clock()
    async with StatusStore(tmp_path / "pantau.sqlite", TABLE, clock=clock) as store:
        app = web.Application()
        app.add_subapp(PREFIX, devices_api(REGISTRY, store))
        async with TestClient(TestServer(app)) as client:
            yield client, store, clock


async def get(client: TestClient[Any, Any], path: str, status: int = 200,
              params: dict[str, str] | None = None) -> Any:
    r = await client.get(path, params=params)
    assert r.status == status, await r.text()
    assert r.content_type == "application/json"
    return await r.json()


def telemetry(rows: list[tuple[str, str, int, float]]) -> TelemetryBatch:
    return TelemetryBatch.from_arrays([r[2] for r in rows],
                                      [TABLE.lookup[r[0]][r[1]] for r in rows],
                                      [r[3] for r in rows], origin=[0] * len(rows))


async def test_list_has_status_last_seen_and_battery(api: Any) -> None:
    client, store, clock = api
    clock.now = T0 + 5 * S
    store.on_stored(Stored.of(telemetry([("wl-1", "level_cm", T0, 150.0),
                                         ("wl-1", "battery_v", T0, 12.6)]), [clock.now], 0))
    rows = await get(client, "/api/devices")
    assert [r["id"] for r in rows] == ["wl-1", "wl-2", "rg-1"]
    assert rows[0] == {"id": "wl-1", "kind": "river_gauge", "site": "kanigoro", "lat": -8.13,
                       "lon": 112.21, "name": "Brantas", "interval_s": 60.0, "status": "online",
                       "last_seen": iso(T0 + 5 * S), "battery_v": 12.6,
                       "metrics": [{"name": "level_cm", "unit": "cm"},
                                   {"name": "battery_v", "unit": "V"}]}
    assert rows[1]["status"] == "unknown" and rows[1]["last_seen"] is None
    assert rows[1]["battery_v"] is None
    assert iso(T0 + 5 * S) == "2027-01-15T08:00:05.000Z"


@pytest.mark.parametrize(("query", "ids"), [
    pytest.param("kind=river_gauge", ["wl-1", "wl-2"], id="kind"),
    pytest.param("site=wlingi", ["wl-2", "rg-1"], id="site"),
    pytest.param("status=online", ["wl-1"], id="online"),
    pytest.param("status=offline", ["wl-2"], id="offline"),
    pytest.param("status=unknown", ["rg-1"], id="unknown"),
    pytest.param("status=online,offline", ["wl-1", "wl-2"], id="several"),
    pytest.param("kind=river_gauge&site=wlingi", ["wl-2"], id="and"),
    pytest.param("kind=", ["wl-1", "wl-2", "rg-1"], id="empty-is-no-filter"),
])
async def test_filters(api: Any, query: str, ids: list[str]) -> None:
    client, store, _ = api
    store.on_status("pantau/kanigoro/wl-1/status", b"online")
    store.on_status("pantau/wlingi/wl-2/status", b"offline")
    assert [r["id"] for r in await get(client, f"/api/devices?{query}")] == ids


@pytest.mark.parametrize(("query", "message"), [
    pytest.param("kind=volcano", "filter 'kind': 'volcano' is not one of rain_gauge, "
                 "river_gauge", id="kind"),
    pytest.param("site=jakarta", "filter 'site': 'jakarta' is not one of kanigoro, wlingi",
                 id="site"),
    pytest.param("status=asleep", "filter 'status': 'asleep' is not one of offline, online, "
                 "unknown", id="status"),
    pytest.param("status=online,asleep", "filter 'status': 'asleep'", id="one-of-several"),
])
async def test_a_bad_filter_is_a_400(api: Any, query: str, message: str) -> None:
    body = await get(api[0], f"/api/devices?{query}", 400)
    assert body["error"].startswith(message)


async def test_one_device_with_last_values(api: Any) -> None:
    client, store, clock = api
    store.on_stored(Stored.of(telemetry([("wl-1", "level_cm", T0 - S, 140.0),
                               ("wl-1", "level_cm", T0, 150.0)]), [clock.now], 0))
    d = await get(client, "/api/devices/wl-1")
    assert (d["status"], d["status_since"], d["status_cause"]) == ("online", iso(T0),
                                                                   "telemetry")
    assert (d["owner"], d["contact"], d["tags"]) == ("BPBD", "ops@example.org",
                                                     {"river": "brantas"})
    assert d["values"] == {"level_cm": {"value": 150.0, "unit": "cm", "ts": iso(T0)}}
    level = d["metrics"][0]
    assert (level["name"], level["gain"], level["min"]) == ("level_cm", 2.0, None)
    assert level["calibration"] == [{"from": "2026-01-01T00:00:00.000Z", "gain": 2.0,
                                     "offset": 0.0, "note": ""}]
    unknown = await get(client, "/api/devices/rg-1")
    assert (unknown["status"], unknown["values"], unknown["status_since"]) == ("unknown", {},
                                                                               None)


async def test_history_newest_first_with_limit(api: Any) -> None:
    client, store, clock = api
    store.on_status("pantau/kanigoro/wl-1/status", b"online")
    clock.now += 200 * S
    store.sweep()
    clock.now += 1 * S
    store.on_stored(Stored.of(telemetry([("wl-1", "level_cm", clock.now, 1.0)]), [clock.now], 0))
    assert await get(client, "/api/devices/wl-1/history") == [
        {"ts": iso(T0 + 201 * S), "status": "online", "cause": "telemetry"},
        {"ts": iso(T0 + 200 * S), "status": "offline", "cause": "timeout"},
        {"ts": iso(T0), "status": "online", "cause": "lwt"}]
    assert len(await get(client, "/api/devices/wl-1/history?limit=1")) == 1
    assert await get(client, "/api/devices/wl-2/history") == [
        {"ts": iso(T0 + 200 * S), "status": "offline", "cause": "timeout"}]


@pytest.mark.parametrize("path", ["/api/devices/nope", "/api/devices/nope/history"])
async def test_unknown_device_is_a_404(api: Any, path: str) -> None:
    assert await get(api[0], path, 404) == {"error": "device 'nope' is not in the registry"}


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001"])
async def test_a_bad_history_limit_is_a_400(api: Any, limit: str) -> None:
    body = await get(api[0], f"/api/devices/wl-1/history?limit={limit}", 400)
    assert body["error"].startswith("limit:")


@pytest.mark.parametrize("limit", ["²", "٣", "1.5", " 5", "99999999999999999999"])
async def test_a_limit_not_in_ascii_digits_is_a_400(api: Any, limit: str) -> None:
    body = await get(api[0], "/api/devices/wl-1/history", 400, params={"limit": limit})
    assert body["error"] == f"limit: {limit!r} is not a whole number in [1, 1000]"


@pytest.mark.parametrize(("path", "error"), [
    pytest.param("/api/devices?staus=offline", "unknown query parameter 'staus'; expected: "
                 "kind, site, status", id="misspelt-filter"),
    pytest.param("/api/devices?kind=rain_gauge&kind=river_gauge", "query parameter 'kind' "
                 "given more than once", id="repeated"),
    pytest.param("/api/devices/wl-1?limit=3", "unknown query parameter 'limit'; expected: "
                 "none", id="detail-takes-none"),
    pytest.param("/api/devices/wl-1/history?limt=3", "unknown query parameter 'limt'; "
                 "expected: limit", id="history"),
])
async def test_an_unknown_or_repeated_parameter_is_a_400(api: Any, path: str,
                                                         error: str) -> None:
    assert await get(api[0], path, 400) == {"error": error}
