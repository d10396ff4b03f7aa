"""Scenario 3: the database fails under a steady stream: ``kill -9`` of InfluxDB, then (through
`FaultProxy`) 503 and 429 answers with ``Retry-After``, then slow answers.

What the writer must do (ingest/writer.py): retry forever with backoff, never sooner than
``Retry-After``; meanwhile Pantau stops reading (back-pressure) and the stream waits in the
broker; nothing is lost, and every reading is stored once when the database is back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pantau.devstack import free_port
from pantau.faults.proc import total
from pantau.faults.proxy import FaultProxy
from pantau.faults.report import Result
from pantau.faults.rig import Recovery, Rig
from pantau.faults.scale import Size


async def database(work: Path, size: Size) -> Result:
    rate, kill_s, status_s = size.pick(400, 1000), size.pick(5, 30), size.pick(5, 30)
    retry_after, slow_s, delay = size.pick(2, 5), size.pick(6, 60), size.pick(2.0, 5.0)
    gap = size.pick(3, 10)
    r = Result("3 database faults", f"InfluxDB kill -9 for {kill_s} s; 503, then 429, with "
               f"Retry-After {retry_after} s for {status_s} s each; {delay:g} s per write for "
               f"{slow_s} s")
    async with Rig(work) as rig:
        proxy = FaultProxy(rig.influx.url, "127.0.0.1", free_port())
        await proxy.start()
        try:
            p = await rig.pantau(PANTAU_INFLUX_URL=proxy.url,
                                 PANTAU_INFLUX_RETRY_MAX_S=str(size.pick(2, 15)))
            span = kill_s + 2 * status_s + slow_s + 5 * gap
            sent_f = rig.publish(int(rate * span), rate)
            await asyncio.sleep(gap)
            rig.influx.kill()
            a = time.time()
            await asyncio.sleep(kill_s)
            await asyncio.to_thread(rig.influx.start)
            b = time.time()
            rec = Recovery(rig, b)
            paused = [s for s in rig.sampler(p).between(a, b) if s.paused == 1]
            r.check("back-pressure while InfluxDB was down: reading paused, the stream waited "
                    "in the broker", bool(paused), f"{len(paused)} samples paused")
            for status in (503, 429):
                await asyncio.sleep(gap)
                proxy.fail(status, retry_after)
                a = time.time()
                await asyncio.sleep(status_s)
                proxy.heal()
                n = proxy.count("/write", a, time.time())
                most = int(status_s / retry_after) + 2
                r.check(f"{status}: the writer waited Retry-After ({retry_after} s) between "
                        f"attempts", 1 <= n <= most, f"{n} write attempts in {status_s} s "
                        f"(at most {most})")
            await asyncio.sleep(gap)
            before = await asyncio.to_thread(rig.count)
            proxy.slow(delay)
            a = time.time()
            await asyncio.sleep(slow_s)
            proxy.heal()
            during = await asyncio.to_thread(rig.count) - before
            n = proxy.count("/write", a, time.time())
            r.check(f"slow writes ({delay:g} s each): one at a time, larger batches, still "
                    "storing", during > 0 and n <= slow_s / delay + 2,
                    f"{during} readings stored by {n} writes in {slow_s} s")
            sent = await sent_f
            await rig.finish(r, sent, p)
            r.recover = f"{rec.seconds():.1f} s"
            m = await p.metrics()
            kinds = {k.split('"')[1]: v for k, v in m.items()
                     if k.startswith("pantau_write_retries_total{")}
            r.check("retries counted by kind", all(kinds.get(k, 0) > 0 for k
                                                   in ("network", "503", "429")),
                    ", ".join(f"{k} {v:.0f}" for k, v in sorted(kinds.items())))
            r.check("retries in the total", total(m, "pantau_write_retries_total") > 0)
            code = (await p.stop())[1]
            r.check("clean stop after the scenario", code == 0, f"exit {code}")
        finally:
            await proxy.close()
    return r
