"""Scenario 3: the database fails under a steady stream: ``kill -9`` of InfluxDB, then (through
`FaultProxy`) 503 and 429 answers with ``Retry-After``, then slow answers.

What the writer must do (ingest/writer.py): retry forever with backoff, never sooner than
``Retry-After`` (counted on the proxy for the writes of the readings only: Pantau's own
metrics, written every ``self_metrics.interval_s``, make their own attempts); meanwhile Pantau
stops reading (back-pressure) and the stream waits in the broker; while writes are slow, it
keeps up by writing bigger batches; nothing is lost, and every reading is stored once when
the database is back. The proxy's log is kept as ``proxy.jsonl`` in the work directory.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.metrics import total
from pantau.devstack import free_port
from pantau.faults.proxy import FaultProxy
from pantau.faults.report import Result
from pantau.faults.rig import Recovery, Rig
from pantau.faults.scale import Size

TELEMETRY = "weather_station"  # the measurement of the rig's readings (and their derived rows)


async def database(work: Path, size: Size) -> Result:
    rate, kill_s, status_s = size.pick(400, 1000), size.pick(4, 30), size.pick(4, 30)
    # Bounded: long enough for several 2 s writes to finish inside the window (with one write
    # at a time, a 5 s window ends with two finished writes, one of them started before it).
    retry_after, slow_s, delay = size.pick(2, 5), size.pick(10, 60), size.pick(2.0, 5.0)
    gap = size.pick(2, 10)
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
                b = time.time()
                n = proxy.count("/write", a, b, TELEMETRY)
                other = proxy.count("/write", a, b) - n
                most = int(status_s / retry_after) + 2
                r.check(f"{status}: the writer waited Retry-After ({retry_after} s) between "
                        f"attempts to write the readings", 1 <= n <= most,
                        f"{n} write attempts of readings in {status_s} s (at most {most}); "
                        f"{other} more of other measurements (Pantau's own metrics) not counted")
            await asyncio.sleep(gap)
            m0, before = await p.metrics(), await asyncio.to_thread(rig.count)
            proxy.slow(delay)
            await asyncio.sleep(slow_s)
            proxy.heal()
            m1, during = await p.metrics(), await asyncio.to_thread(rig.count) - before
            writes = m1.get("pantau_batch_readings_count", 0) - m0.get(
                "pantau_batch_readings_count", 0)
            per = (m1.get("pantau_batch_readings_sum", 0) - m0.get("pantau_batch_readings_sum",
                                                                   0)) / max(writes, 1)
            # Once writes are slow, a batch grows up to influx.max_batch_size while one is in
            # flight (ingest.pipeline): Pantau can store max_batch_size / delay readings/s
            # (4,000/s at 5 s), above this stream's 2,000/s at full length (800 bounded).
            r.check(f"slow writes ({delay:g} s each): the stream kept being stored (at least "
                    "half the offered rate)", during >= 0.5 * rate * slow_s,
                    f"{during:,} of {rate * slow_s:,.0f} messages in {slow_s} s, "
                    f"{writes:.0f} writes of {per:,.0f} readings on average")
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
            proxy.dump(work / "proxy.jsonl")
            await proxy.close()
    return r
