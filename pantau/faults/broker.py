"""Scenarios 1 and 2: the broker crashes (``kill -9``, then a restart on its persistence) and
the broker freezes (``SIGSTOP`` past the keepalive, then ``SIGCONT``)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from core.metrics import total
from pantau.faults.proc import FaultError, proc_stats
from pantau.faults.report import Ledger, Result
from pantau.faults.rig import Recovery, Rig
from pantau.faults.scale import Size


async def _snapshot_after(rig: Rig, t: float, within: float) -> float:
    """The mtime of the broker's persistence file, once it is newer than ``t``."""
    db = rig.broker.data_dir / "mosquitto.db"
    deadline = time.time() + within
    while time.time() < deadline:
        if db.exists() and db.stat().st_mtime > t:
            return db.stat().st_mtime
        await asyncio.sleep(0.1)
    raise FaultError(f"the broker wrote no snapshot to {db} within {within:.0f} s")


async def broker_kill(work: Path, size: Size) -> Result:
    rate, down, after = size.pick(500, 1000), size.pick(3, 30), size.pick(5, 30)
    async with Rig(work) as rig:
        autosave = rig.broker.autosave_interval
        r = Result("1 broker kill -9", f"kill -9 Mosquitto mid-stream, restart after {down} s "
                   f"(autosave_interval {autosave} s as deploy/ ships it)")
        p = await rig.pantau()
        subscribed = time.time()
        before = size.pick(2, 30)
        sent_f = rig.publish(int(rate * (before + down + after + autosave)), rate)
        await asyncio.sleep(before)
        # A broker that has run a while has snapshotted Pantau's session: wait for one.
        snap = await _snapshot_after(rig, subscribed, autosave * 2 + 5)
        await asyncio.sleep(1.0)  # some acknowledged messages are newer than the snapshot
        rig.broker.kill()
        killed = time.time()
        await asyncio.sleep(down)
        await asyncio.to_thread(rig.broker.start)
        rec = Recovery(rig, time.time())
        sent = await sent_f

        def lost_ok(led: Ledger) -> tuple[str, bool, str]:
            early = int((led.lost_acked_at < snap - 1.0).sum())
            return ("nothing lost that the broker acknowledged before its last snapshot",
                    early == 0, f"{led.lost} readings lost, {early} of them acknowledged "
                    f"before the snapshot; the rest in the {killed - snap:.1f} s between the "
                    "snapshot and the kill")
        await rig.finish(r, sent, p, lost_ok=lost_ok)
        r.recover = f"{rec.seconds():.1f} s"
        m = await p.metrics()
        r.check("Pantau reconnected and resumed its session",
                total(m, "pantau_mqtt_reconnects_total") >= 1
                and "session resumed" in p.log.read_text(), p.log.name)
        code = (await p.stop())[1]
        r.check("clean stop after the scenario", code == 0, f"exit {code}")
    return r


async def broker_freeze(work: Path, size: Size) -> Result:
    keepalive, freeze, rate = size.pick(2, 30), size.pick(7, 75), size.pick(400, 1000)
    r = Result("2 broker frozen", f"SIGSTOP Mosquitto {freeze} s (keepalive {keepalive} s), "
               "then SIGCONT")
    async with Rig(work) as rig:
        p = await rig.pantau(PANTAU_MQTT_KEEPALIVE_S=str(keepalive),
                             PANTAU_MQTT_RECONNECT_MAX_S=str(size.pick(2, 30)))
        sent_f = rig.publish(int(rate * (freeze + 8)), rate)
        await asyncio.sleep(3)
        pid = rig.broker.pid
        assert pid is not None and p.pid is not None
        cpu0, t0 = _cpu(p.pid), time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(freeze)
        finally:
            os.kill(pid, signal.SIGCONT)
        cpu = (_cpu(p.pid) - cpu0) / (time.monotonic() - t0)
        thawed = time.time()
        rec = Recovery(rig, thawed)
        noticed = [s for s in rig.sampler(p).between(thawed - freeze, thawed) if s.connected == 0]
        sent = await sent_f
        await rig.finish(r, sent, p)
        r.recover = f"{rec.seconds():.1f} s"
        r.check("Pantau noticed the frozen broker (disconnected while it was stopped)",
                bool(noticed), f"{len(noticed)} samples disconnected")
        r.check("no spin while the broker was frozen: CPU under 10 % of a core", cpu < 0.10,
                f"{cpu:.1%}")
        m = await p.metrics()
        r.check("reconnected after SIGCONT", total(m, "pantau_mqtt_reconnects_total") >= 1,
                f"{total(m, 'pantau_mqtt_reconnects_total'):.0f} reconnects")
        code = (await p.stop())[1]
        r.check("clean stop after the scenario", code == 0, f"exit {code}")
    return r


def _cpu(pid: int) -> float:
    return proc_stats(pid)[3]
