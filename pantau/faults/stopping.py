"""Scenario 7: SIGTERM at the worst moments, during the warm-up and during a drain that cannot
finish, and whether ``docker-compose.yml`` waits long enough before its SIGKILL.

Pantau's stop contract (README, docs/reliability.md): after SIGTERM it stops reading, drains
what it read into the database for at most `pantau.app.DRAIN_TIMEOUT_S`, acknowledges what was
written, and exits; what was not written stays unacknowledged in the broker. `GRACE_S` adds the
time to close everything, and is what ``stop_grace_period`` must give it.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from core.metrics import total
from pantau.app import DRAIN_TIMEOUT_S
from pantau.devstack import free_port
from pantau.faults.proxy import FaultProxy
from pantau.faults.report import Result
from pantau.faults.rig import Recovery, Rig
from pantau.faults.scale import Size

GRACE_S = DRAIN_TIMEOUT_S + 5.0
COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose_grace_s(path: Path = COMPOSE) -> float:
    """The ``pantau`` service's ``stop_grace_period`` in seconds (Docker's default: 10)."""
    block = re.search(r"^  pantau:\n((?:    .*\n|\s*\n)*)", path.read_text(), re.MULTILINE)
    found = re.search(r"^    stop_grace_period:\s*\"?([^\s\"#]+)", block.group(1) if block else "",
                      re.MULTILINE)
    text = found.group(1) if found else "10s"
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", text)
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)


async def _until(predicate: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def sigterm(work: Path, size: Size) -> Result:
    query_s, write_s, rate = GRACE_S + 3, size.pick(8.0, 12.0), size.pick(400, 1000)
    r = Result("7 SIGTERM", f"SIGTERM during the warm-up (a query answering in {query_s:g} s) "
               f"and during a drain that cannot finish ({write_s:g} s per write)")
    async with Rig(work) as rig:
        proxy = FaultProxy(rig.influx.url, "127.0.0.1", free_port())
        await proxy.start()
        try:
            # 1. During the warm-up: no snapshot yet, so Pantau reads the stored readings back.
            proxy.slow(query_s, paths=("/query",))
            p = await rig.pantau(ready=False, PANTAU_INFLUX_URL=proxy.url)

            async def querying() -> bool:
                return any(s.path == "/query" for s in proxy.arrived)
            started = await _until(querying, 60)
            took, code = await p.stop()
            r.check(f"stopped within {GRACE_S:g} s when signalled during the warm-up",
                    started and took <= GRACE_S and code == 0,
                    f"{took:.1f} s, exit {code}" if started else "the warm-up never queried")
            proxy.heal()
            # 2. During a drain that cannot finish: every write takes `write_s` seconds.
            p = await rig.pantau(PANTAU_INFLUX_URL=proxy.url)
            sent_f = rig.publish(int(rate * size.pick(8, 60)), rate)
            await asyncio.sleep(2)
            proxy.slow(write_s)

            async def backlog() -> bool:
                return total(await p.metrics(), "pantau_queue_batches") >= 2
            queued = await _until(backlog, 30)
            drain_took, code = await p.stop()
            r.check(f"stopped within {GRACE_S:g} s when signalled during a long drain",
                    queued and drain_took <= GRACE_S and code == 0,
                    f"{drain_took:.1f} s, exit {code}" if queued else "no backlog formed")
            proxy.heal()
            restarted = time.time()
            rec = Recovery(rig, restarted)
            p = await rig.pantau(PANTAU_INFLUX_URL=proxy.url)
            sent = await sent_f
            await rig.finish(r, sent, p)
            r.recover = f"stops {took:.1f} s, {drain_took:.1f} s"
            r.notes.append(f"after the restart, readings up to it stored in {rec.seconds():.1f} s")
            grace = compose_grace_s()
            r.check(f"docker-compose.yml: stop_grace_period at least {GRACE_S:g} s", grace >=
                    GRACE_S, f"{grace:g} s")
            code = (await p.stop())[1]
            r.check("clean stop after the scenario", code == 0, f"exit {code}")
        finally:
            await proxy.close()
    return r
