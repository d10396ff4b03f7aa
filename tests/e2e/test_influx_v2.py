"""Pantau with ``influx.api = "v2"``: the whole service writes through influxdb-client's
``/api/v2/write`` to a real server that speaks it (Debian's VictoriaMetrics), read back
through VictoriaMetrics' export API."""

from __future__ import annotations

import json
import time
from typing import Any

from pantau.devstack import VictoriaMetrics
from tests.e2e.conftest import EnvFactory, run_pantau, wait_for

NOW_MS = (int(time.time()) - 60) * 1000


async def test_v2_api_end_to_end(pantau_env: EnvFactory, victoria: VictoriaMetrics,
                                 mqtt_client: Any) -> None:
    env = pantau_env("unused", PANTAU_INFLUX_API="v2", PANTAU_INFLUX_URL=victoria.url,
                     PANTAU_INFLUX_ORG="blitar", PANTAU_INFLUX_BUCKET="pantau",
                     PANTAU_INFLUX_TOKEN="write-only-token",
                     PANTAU_INGEST_PROCESSORS="calibration,range_check,dedupe")
    dev = mqtt_client("ws-penataran")
    selector = '{__name__="weather_station_temperature_c",device="ws-penataran"}'
    async with run_pantau(env):
        for i in range(3):
            dev.publish("pantau/penataran/ws-penataran/telemetry", json.dumps(
                {"ts": NOW_MS + i * 1000, "values": {"temperature_c": 26.5 + i,
                                                     "humidity_pct": 80.0}}))
        await wait_for(lambda: sum(len(s["values"]) for s in victoria.export(selector)) == 3,
                       20, "3 points in VictoriaMetrics")
    [series] = victoria.export(selector)
    assert series["metric"]["site"] == "penataran"
    assert series["timestamps"] == [NOW_MS, NOW_MS + 1000, NOW_MS + 2000]
    assert series["values"] == [26.5, 27.5, 28.5]
