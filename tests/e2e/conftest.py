"""End-to-end helpers: Pantau wired to the session's real Mosquitto and InfluxDB.

``pantau_env(db, **overrides)`` -> the ``PANTAU_*`` environment for a Pantau instance with its
own MQTT client id (so its session is its own), its own database and state dir, on a free
HTTP port, with a viewer API token (``env[API_TOKEN]``, not a setting: see `api_headers`).
``run_pantau(env)`` runs it in this test's event loop (async context manager);
`PantauProcess` runs ``pantau run`` as a child process, for kill -9. ``scrape(env)`` is the
one way tests read its ``/metrics``: ``name{labels}`` as rendered -> value (sum label sets
with `core.metrics.total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from core.metrics import parse_text, total
from pantau.app import run
from pantau.config import load_settings
from pantau.devstack import PANTAU_USER, InfluxDB1, Mosquitto, free_port
from pantau.tokens import token_file

API_TOKEN = "E2E_API_TOKEN"

_ids = itertools.count(1)

EnvFactory = Callable[..., dict[str, str]]


@pytest.fixture
def pantau_env(mosquitto: Mosquitto, influx: InfluxDB1, tmp_path: Path) -> EnvFactory:
    def make(db: str, *, broker: Mosquitto | None = None, influx_db: InfluxDB1 | None = None,
             **overrides: str) -> dict[str, str]:
        b, i = broker or mosquitto, influx_db or influx
        writer = i.writer
        env = {
            "PANTAU_MQTT_URL": b.url_for(PANTAU_USER),
            "PANTAU_MQTT_CLIENT_ID": f"pantau-e2e-{os.getpid()}-{next(_ids)}",
            # Enough for a test's own restarts; a finished test's session must not stay on
            # the session broker queueing every later test's messages (7 days by default).
            "PANTAU_MQTT_SESSION_EXPIRY_S": "60",
            "PANTAU_MQTT_RECONNECT_MIN_S": "0.1",
            "PANTAU_MQTT_RECONNECT_MAX_S": "1",
            "PANTAU_INFLUX_URL": i.url,
            "PANTAU_INFLUX_DATABASE": db,
            "PANTAU_INFLUX_USERNAME": writer.username,
            "PANTAU_INFLUX_PASSWORD": writer.password,
            "PANTAU_INFLUX_READ_USERNAME": i.reader.username,
            "PANTAU_INFLUX_READ_PASSWORD": i.reader.password,
            "PANTAU_INFLUX_FLUSH_INTERVAL_S": "0.05",
            "PANTAU_INFLUX_RETRY_MAX_S": "1",
            "PANTAU_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
            "PANTAU_STATE_DIR": str(tmp_path / "state"),
        }
        env.update(overrides)
        tokens = token_file(load_settings(None, env=env))
        env[API_TOKEN] = tokens.create(f"e2e-{next(_ids)}", "viewer")[1]
        return env
    return make


def api_headers(env: dict[str, str]) -> dict[str, str]:
    """The header that lets a test read Pantau's HTTP API."""
    return {"Authorization": f"Bearer {env[API_TOKEN]}"}


@contextlib.asynccontextmanager
async def run_pantau(env: dict[str, str]) -> AsyncIterator[None]:
    """Pantau in this event loop until the block ends (then a clean, draining stop)."""
    settings = load_settings(None, env=env)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run(settings, stop=stop, started=started))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises what went wrong
    assert started.is_set(), "pantau did not start within 20 s"
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def scrape(env: dict[str, str]) -> dict[str, float]:
    """Pantau's ``/metrics`` now, parsed by `core.metrics.parse_text` (an answer other than 200
    fails the test; a refused connection raises `aiohttp.ClientError`)."""
    async with aiohttp.ClientSession() as s, s.get(
            f"http://{env['PANTAU_HTTP_LISTEN']}/metrics") as r:
        assert r.status == 200, f"/metrics answered {r.status}"
        return parse_text(await r.text())


async def reached(env: dict[str, str], name: str, n: float) -> bool:
    """Whether ``name`` summed over its label sets on ``/metrics`` is at least ``n`` (a
    predicate for `wait_for`)."""
    return total(await scrape(env), name) >= n


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], within: float = 15.0,
                   what: str = "condition") -> None:
    """Poll ``predicate`` (a function, or one returning an awaitable, such as a coroutine
    reading `scrape`) until it is true; past ``within`` seconds the test fails saying ``what``."""
    deadline = time.monotonic() + within
    while not await _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _holds(predicate: Callable[[], bool | Awaitable[bool]]) -> bool:
    value = predicate()
    if inspect.isawaitable(value):
        return bool(await value)
    return bool(value)


class PantauProcess:
    """``pantau run`` as a child process (for kill -9), its output in ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.proc = subprocess.Popen([sys.executable, "-m", "pantau.cli", "run"], env=self.env,
                                     stdout=fh, stderr=subprocess.STDOUT)
        fh.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)


@pytest.fixture
def pantau_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], PantauProcess]]:
    procs: list[PantauProcess] = []

    def make(env: dict[str, str]) -> PantauProcess:
        p = PantauProcess(env, tmp_path / f"pantau-{len(procs)}.log")
        procs.append(p)
        return p

    yield make
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)
