"""Scenario 4: a network partition between Pantau and the broker, then between Pantau and the
database, made with a network namespace and veth pairs on this machine only.

Pantau runs in its own namespace, joined to this one by three veth pairs (`Netns`): ``mqtt``
(to a second listener of the broker), ``db`` (to the `FaultProxy` in front of InfluxDB) and
``ctl`` (its HTTP API, never cut). Addresses are /30s of one /24 in 10.213.0.0/16 that nothing
here uses; a blackhole route for that /24 keeps a cut link's packets from ever leaving through
the default route. A cut sets this side of the pair down: Pantau's packets vanish without an
answer, as they do when a cable or a switch dies (no reset, no ICMP).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from core.metrics import total
from pantau.devstack import PANTAU_USER, free_port
from pantau.faults.proc import FaultError
from pantau.faults.proxy import FaultProxy
from pantau.faults.report import Result
from pantau.faults.rig import Recovery, Rig
from pantau.faults.scale import Size

LINKS = ("mqtt", "db", "ctl")


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise FaultError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Netns:
    """A namespace with one veth pair per link of `LINKS`; ``addr[link]`` is (this side,
    Pantau's side). Use as a context manager: everything is deleted at the end."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise FaultError("the partition scenario needs root (ip netns, veth pairs)")
        self.name = f"pantau-faults-{os.getpid()}"
        self.k = next(k for k in range(os.getpid() % 200 + 20, 255)
                      if not _ip("-4", "route", "show", "root", f"10.213.{k}.0/24").strip())
        self.addr = {link: (f"10.213.{self.k}.{4 * j + 1}", f"10.213.{self.k}.{4 * j + 2}")
                     for j, link in enumerate(LINKS)}

    def _dev(self, link: str, side: str) -> str:
        return f"pf{self.k}{link}{side}"[:15]

    def __enter__(self) -> Netns:
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("route", "add", "blackhole", f"10.213.{self.k}.0/24")
            for link, (here, there) in self.addr.items():
                h, t = self._dev(link, "h"), self._dev(link, "n")
                _ip("link", "add", h, "type", "veth", "peer", "name", t, "netns", self.name)
                _ip("addr", "add", f"{here}/30", "dev", h)
                _ip("link", "set", h, "up")
                _ip("-n", self.name, "addr", "add", f"{there}/30", "dev", t)
                _ip("-n", self.name, "link", "set", t, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def cut(self, link: str) -> None:
        _ip("link", "set", self._dev(link, "h"), "down")

    def heal(self, link: str) -> None:
        _ip("link", "set", self._dev(link, "h"), "up")

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)  # takes the veths
        subprocess.run(["ip", "route", "del", "blackhole", f"10.213.{self.k}.0/24"],
                       capture_output=True)


async def partition(work: Path, size: Size) -> Result:
    cut_s, keepalive, rate = size.pick(6, 60), size.pick(2, 15), size.pick(400, 1000)
    r = Result("4 network partition", f"Pantau cut off from the broker for {cut_s} s, healed; "
               f"then from InfluxDB for {cut_s} s, healed (veth pairs, own netns)")
    with Netns() as ns:
        (mq_here, _), (db_here, _), (_, ctl_there) = (ns.addr[k] for k in LINKS)
        mq_port = free_port(mq_here)
        async with Rig(work, mqtt_extra=(mq_here, mq_port)) as rig:
            proxy = FaultProxy(rig.influx.url, db_here, free_port(db_here))
            await proxy.start()
            try:
                user, pw = rig.broker.credentials(PANTAU_USER)
                p = await rig.pantau(
                    netns=ns.name, PANTAU_INFLUX_URL=proxy.url,
                    PANTAU_MQTT_URL=f"mqtt://{quote(user)}:{quote(pw, safe='')}@{mq_here}:"
                                    f"{mq_port}",
                    PANTAU_HTTP_LISTEN=f"{ctl_there}:{free_port()}",
                    PANTAU_MQTT_KEEPALIVE_S=str(keepalive),
                    PANTAU_MQTT_RECONNECT_MAX_S=str(size.pick(2, 30)),
                    PANTAU_INFLUX_TIMEOUT_S=str(size.pick(3, 10)),
                    PANTAU_INFLUX_RETRY_MAX_S=str(size.pick(2, 15)))
                sent_f = rig.publish(int(rate * (2 * cut_s + 12)), rate)
                recover = []
                for link in ("mqtt", "db"):
                    await asyncio.sleep(3)
                    ns.cut(link)
                    a = time.time()
                    await asyncio.sleep(cut_s)
                    ns.heal(link)
                    b = time.time()
                    recover.append((link, Recovery(rig, b)))
                    during = rig.sampler(p).between(a, b)
                    if link == "mqtt":
                        r.check("cut from the broker: Pantau noticed (disconnected)",
                                any(s.connected == 0 for s in during),
                                f"{sum(s.connected == 0 for s in during)} samples disconnected")
                    else:
                        r.check("cut from InfluxDB: reading paused (back-pressure)",
                                any(s.paused == 1 for s in during),
                                f"{sum(s.paused == 1 for s in during)} samples paused")
                sent = await sent_f
                await rig.finish(r, sent, p)
                r.recover = ", ".join(f"{k} {rec.seconds():.1f} s" for k, rec in recover)
                m = await p.metrics()
                r.check("reconnected to the broker after the heal",
                        total(m, "pantau_mqtt_reconnects_total") >= 1)
                r.check("database writes retried as network failures",
                        m.get('pantau_write_retries_total{kind="network"}', 0) > 0)
                code = (await p.stop())[1]
                r.check("clean stop after the scenario", code == 0, f"exit {code}")
            finally:
                await proxy.close()
    return r
