"""`FaultProxy` tells the writes apart: scenario 3 counts the attempts to write the readings
during a 503/429 fault, and Pantau's own metrics (measurement ``pantau``) and the tiers share
``/write`` with them."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from pantau.devstack import free_port
from pantau.faults.proxy import FaultProxy


@pytest.mark.parametrize(("body", "query", "what"), [
    pytest.param(b"weather_station,device=a t=1 1\nweather_station,device=b t=2 1\n", "",
                 "weather_station", id="readings"),
    pytest.param(b"pantau,instance=x v=1 1\n", "", "pantau", id="own-metrics"),
    pytest.param(b"weather_station,device=a t=1 1\n", "&rp=tier_1h", "weather_station@tier_1h",
                 id="tier"),
    pytest.param(b"my\\ station,device=a t=1 1\nalerts v=1 1\n", "", "alerts,my\\ station",
                 id="escaped-and-mixed"),
])
async def test_each_write_is_logged_with_its_measurements(body: bytes, query: str, what: str,
                                                          tmp_path: Path) -> None:
    proxy = FaultProxy(f"http://127.0.0.1:{free_port()}", "127.0.0.1", free_port())
    await proxy.start()
    proxy.fail(503, retry_after_s=5)  # answered by the proxy: no database needed
    try:
        async with aiohttp.ClientSession() as http, http.post(
                f"{proxy.url}/write?db=x{query}", data=body) as resp:
            assert (resp.status, resp.headers["Retry-After"]) == (503, "5")
    finally:
        await proxy.close()
    assert [(s.path, s.status, s.what) for s in proxy.seen] == [("/write", 503, what)]
    t = proxy.seen[0].t
    assert proxy.count("/write", t, t, what) == 1
    assert proxy.count("/write", t, t, "something else") == 0
    proxy.dump(tmp_path / "proxy.jsonl")
    assert json.loads((tmp_path / "proxy.jsonl").read_text())["what"] == what
