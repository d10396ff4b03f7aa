"""The HTTP API of a real ``pantau run`` (child process, real Mosquitto and InfluxDB): /readyz
says what fails without naming a URL, user, password or database; /api/ refuses without a
token, and a token made by ``pantau tokens create`` counts at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from pantau.devstack import free_port
from tests.e2e.conftest import API_TOKEN, EnvFactory, PantauProcess


async def _get(url: str, headers: dict[str, str] | None = None,
               within: float = 20.0) -> tuple[int, Any]:
    """The first answer from ``url`` (retried while the server is not listening yet)."""
    async with aiohttp.ClientSession(headers=headers) as s:
        for _ in range(int(within / 0.1)):
            try:
                async with s.get(url) as r:
                    return r.status, await r.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"no answer from {url}")


async def test_readyz_says_what_fails_and_names_no_secret(
        pantau_env: EnvFactory, pantau_process: Any, influx_db: str) -> None:
    env = pantau_env(influx_db)
    good_url = env["PANTAU_MQTT_URL"]
    env["PANTAU_MQTT_URL"] = good_url.replace("@", "x@", 1)  # a wrong password
    env["PANTAU_INFLUX_URL"] = f"http://127.0.0.1:{free_port()}"  # nobody listens
    p: PantauProcess = pantau_process(env)
    p.start()
    try:
        url = f"http://{env['PANTAU_HTTP_LISTEN']}/readyz"
        for _ in range(100):
            status, body = await _get(url)
            if body["checks"]["mqtt"] != "ok" and body["checks"]["database"] != "ok":
                break
            await asyncio.sleep(0.1)
    finally:
        p.stop()
    assert (status, body["ready"]) == (503, False)
    assert (body["checks"]["mqtt"], body["checks"]["database"]) == ("not connected",
                                                                    "not reachable")
    mqtt_user, _, mqtt_password = good_url.split("@")[0].split("//")[1].partition(":")
    secrets = [env["PANTAU_INFLUX_USERNAME"], env["PANTAU_INFLUX_PASSWORD"], influx_db,
               env["PANTAU_INFLUX_URL"], "127.0.0.1", mqtt_user, mqtt_password]
    assert not [s for s in secrets if s in json.dumps(body)]


async def test_the_api_needs_a_token_and_one_created_meanwhile_counts(
        pantau_env: EnvFactory, pantau_process: Any, influx_db: str) -> None:
    env = pantau_env(influx_db)
    env.pop(API_TOKEN)
    env["PANTAU_HTTP_TOKENS_FILE"] = str(Path(env["PANTAU_STATE_DIR"]) / "fresh-tokens.json")
    p: PantauProcess = pantau_process(env)
    p.start()
    try:
        base = f"http://{env['PANTAU_HTTP_LISTEN']}"
        status, body = await _get(f"{base}/api/devices")
        assert status == 401 and "pantau tokens create" in body["error"]
        made = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "pantau.cli", "tokens", "create", "--role",
                             "viewer", "--name", "wall"], env=p.env, capture_output=True,
            text=True, check=True)
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
        status, body = await _get(f"{base}/api/devices", headers)
        assert status == 200 and {d["id"] for d in body} >= {"wl-brantas-kanigoro"}
        status, body = await _get(f"{base}/api/devices/wl-brantas-kanigoro/history?limit=²",
                                  headers)
        assert (status, body) == (400, {"error": "limit: '²' is not a whole number in "
                                                 "[1, 1000]"})
    finally:
        assert p.stop() == 0
